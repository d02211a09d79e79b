"""Language consistency of a chain of thought by Unicode script (DeepSeek-R1's language reward).

What it knows: which script each letter is written in (Latin, Han, Cyrillic, Hangul, kana, ...), read
from the first word of its Unicode character name. What it does not know: languages sharing a script.
"en" means "Latin script", so French scores as English; "ja" accepts Han, so Chinese scores as Japanese.
That is enough for the failure R1 fights (a CoT drifting between English and Chinese) without a
language-ID model as a dependency.

Departure from R1, which does not say what a "word" is: a word is a run of letters of one script, except
that every Han or kana character is a word of its own (those languages put no spaces between words).
Math is not language, so `$…$`, `\\(…\\)`, `\\[…\\]` spans, LaTeX commands, numbers and Greek letters
are ignored, and so are one-letter Latin words (mostly variables like "x"; dropping the English "a" and
"I" barely moves a share).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# target language -> the scripts (first word of the Unicode character name) whose words count as that language
SCRIPTS: dict[str, frozenset[str]] = {
    "en": frozenset({"LATIN"}),
    "zh": frozenset({"CJK"}),
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL"}),
    "ru": frozenset({"CYRILLIC"}),
}
_ONE_CHAR_WORDS = frozenset({"CJK", "HIRAGANA", "KATAKANA"})  # scripts written without spaces between words
_IGNORED = frozenset({"GREEK"})  # in a math CoT, Greek letters are symbols (π, θ), not words

_MATH = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)
_COMMAND = re.compile(r"\\[A-Za-z]+")
_LETTERS = re.compile(r"[^\W\d_]+")  # runs of letters of any script


@lru_cache(maxsize=8192)
def _script(char: str) -> str:
    """The script of one letter: "LATIN", "CJK", "CYRILLIC", ...; "" when unnamed. Cached: runs per char."""
    return unicodedata.name(char, "").split(" ", 1)[0]


def chain_of_thought(text: str) -> str:
    """The reasoning part of a response: inside `<think>…</think>` when there is one, else all of it.

    Handles a completion whose `<think>` sat in the prompt (R1-Distill templates generate only
    `</think>`) and an unfinished think block (everything after `<think>`).
    """
    head, closed, _ = text.partition("</think>")
    cot = head if closed else text
    _, opened, tail = cot.partition("<think>")
    return tail if opened else cot


def words_by_script(text: str) -> list[str]:
    """The script of each word in `text` (one entry per word), after removing math and LaTeX."""
    text = unicodedata.normalize("NFKC", text)  # full-width and math-alphabet letters become plain ones
    text = _COMMAND.sub(" ", _MATH.sub(" ", text))
    scripts: list[str] = []
    for run in _LETTERS.findall(text):
        i = 0
        while i < len(run):  # split where the script changes: "abc中文" is three words, not one
            script = _script(run[i])
            j = i + 1
            while j < len(run) and _script(run[j]) == script:
                j += 1
            if script in _ONE_CHAR_WORDS:
                scripts.extend([script] * (j - i))
            elif script not in _IGNORED and not (script == "LATIN" and j - i == 1):
                scripts.append(script)
            i = j
    return scripts


def language_consistency(text: str, language: str = "en") -> float:
    """Share of the chain of thought's words written in `language`'s script, in [0, 1].

    DeepSeek-AI 2025, "DeepSeek-R1": "the proportion of target language words in the CoT", summed with
    the accuracy reward. reward = (words in the target script) / (all words), words counted by
    `words_by_script` over `chain_of_thought(text)`. A CoT with no words (empty, or only math) scores 0.0:
    there is no language to be consistent in, and a bonus for saying nothing would be one to hack.
    `language` is one of `SCRIPTS` ("en", "zh", "ja", "ko", "ru").
    """
    if language not in SCRIPTS:
        raise ValueError(f"unknown language {language!r}; known: {sorted(SCRIPTS)}")
    scripts = words_by_script(chain_of_thought(text))
    if not scripts:
        return 0.0
    target = SCRIPTS[language]
    return sum(s in target for s in scripts) / len(scripts)
