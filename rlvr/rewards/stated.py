"""Answers stated in prose, as small models write them: the value after "the answer is", and a response's conclusion.

Two readings, both for text without a box or an answer tag:
- `leading_value`: what a sentence opens with after a cue ("The answer is 13, which is 2 more than 11" → 13). A
  second value offered after the first ("5 or 6", "5 apples and 6 pears") makes a list, which equals no single gold.
- `conclusion`: the value the response ends by stating (the "conclusion" fallback, `verify(final_form=True)`). The
  last sentence with a number, read after its last statement verb ("Ana reads a total of 3 pages every day for
  6 days" → 3, "So there are 30 - 20 = 10 boys" → 10), with commentary after ", which" / "because" left out.
  A response that stops mid-sentence has concluded nothing: a truncated chain of reasoning is not paid because its
  last number happens to be the gold. This departs from the last-number fallback of the Qwen2.5-Math harness (rlvr's
  default, `last_math`), whose labels pay such responses; on arithmetic and word problems it pays the echo of the
  question's numbers and the scratch work of a cut-off response.
"""

from __future__ import annotations

import re

_NUM = r"(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)"
_OP = r"(?:[-+*/=x×÷·^]|\\times|\\cdot|\\div)"
# a number, or arithmetic on numbers ending in one ("50 + 44 = 94", "$8", "2 x 4 = 8", "15%")
_CHAIN = re.compile(rf"(?<![\w.])[-(]*\$?\s*{_NUM}(?:\s*{_OP}+\s*\(*\$?{_NUM}\)*)*(?:\s*%)?")
# "5 or 6", "5 apples, or maybe 6": a second value offered after the first (a hedge, not one answer)
_LIST_GOES_ON = re.compile(
    r"(?:\s*[A-Za-z]+)?\s*,?\s*(?:or|and|to)\b(?:\s+[A-Za-z]+){0,2}[\s$]*(?=[-.\d])", re.I
)
_WORKING = re.compile(
    r"[^.,;=\n]*?(?:=|\s[-+*/×÷]\s)"
)  # "300 pages / 4 pages = 75": the sentence still computes
_TIMES = re.compile(r"(?<=\d)\s*x\s*(?=[\d(])")  # 2 x 4: the letter x as a multiplication sign

# a finished response: its last sentence ends in . ! or ?, then perhaps closing quotes, brackets, markdown or `$`
_FINISHED = re.compile(r"[.!?][\s\"')\]*_`$]*\Z")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")  # "3.5" does not end a sentence: no space after its point
_REASON = re.compile(
    r"(?:,|\s)\s*(?:because|since)\b.*", re.I | re.S
)  # "…, because 12 + 2 = 14": why, not what
_COMMENTARY = re.compile(r",\s*(?:which|where)\b(?!\s+means)", re.I)
_ENDS_IN_VALUE = re.compile(rf"{_NUM}\)*(?:\s*%)?(?:\s+[A-Za-z]+)?\s*\Z")  # "is 12", "has 14 apples"
_VERB = re.compile(
    r"\b(?:is|are|was|were|be|equals?|has|have|had|gets?|got|makes?|needs?|total of|left with|remains?)\b",
    re.I,
)
LOOKBACK = 3  # sentences read back from the end for a conclusion ("… 8 apples. Hope this helps!")


def clean(value: str) -> str:
    """A matched chain as an answer string: `$` and a dangling `=` dropped, `2 x 4` as `2 \\times 4`."""
    return _TIMES.sub(" \\\\times ", value.strip().lstrip("$").rstrip("=").strip())


def leading_value(line: str) -> str | None:
    """The value `line` opens with, or None when it opens with none or the sentence goes on computing."""
    lead = _CHAIN.match(line)
    if lead is None or _WORKING.match(line, lead.end()):
        return None
    values = [clean(lead.group(0))]
    while (more := _LIST_GOES_ON.match(line, lead.end())) and (lead := _CHAIN.match(line, more.end())):
        values.append(clean(lead.group(0)))  # "5 or 6" is a list, which equals no single gold
    return ", ".join(values)


def conclusion(text: str) -> str:
    """The value the last finished sentences of `text` state ("" when the text stops mid-sentence or states none)."""
    text = text.rstrip()
    if not _FINISHED.search(text):
        return ""
    sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
    for sentence in reversed(sentences[-LOOKBACK:]):
        claim = _claim(sentence)
        chains = list(_CHAIN.finditer(claim))
        if not chains:
            continue
        verb = max((m.end() for m in _VERB.finditer(claim)), default=0)  # after the last statement verb
        equals = claim.rfind("=", verb)
        result = _CHAIN.search(claim, equals + 1) if equals >= 0 else None  # "has 2 + 8 apples = 12 apples"
        after = [c for c in chains if verb and c.start() >= verb]
        return clean((result or (after[0] if after else chains[-1])).group(0))
    return ""


def _claim(sentence: str) -> str:
    """The sentence without its reasons ("because …") and without commentary after a stated value: "is 12, which
    is 2 less than 14" → "is 12"; but "is the money she gave, which is 360 / 600" keeps its value."""
    sentence = _REASON.sub("", sentence)
    commentary = _COMMENTARY.search(sentence)
    if commentary is None or not _ENDS_IN_VALUE.search(sentence, 0, commentary.start()):
        return sentence  # "5 of them are sold, which means 8 - 5 = 3 are left": the value comes after
    return sentence[: commentary.start()]
