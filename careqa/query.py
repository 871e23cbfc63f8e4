"""What a question asks about: its shorthand expanded, the codes that bind the answer, its parts.

Agents type the way they talk on the phone: "pt got reject 75, what do i tell them", "PA for C-II?",
"claim came back with 75". Three things are read off such a question before anything is retrieved:

* **Expansion**: the tenant's glossary (over a small built-in one of common healthcare shorthand)
  rewrites abbreviations as whole words, so "pt" and "PA" match "patient" and "prior authorization"
  in both the embedding and the BM25 search. The agent's own words are kept for display.
* **Codes**: identifiers such as rejection codes ("75", "MR", "M/I") bind the answer. A code is a short
  token next to a code word ("reject 75", "75 reject", "code MR", "codes 70 and MR"), or a token the
  knowledge base itself uses as a code (so "claim came back with 75" is about code 75), unless it is a
  quantity ("75 percent", "90 day supply"). A sentence about code 70 never answers a question about 88.
* **Names**: other numbers and capitalised names ("CVS", "7 days", "Canada"). They do not veto an answer
  whose procedure is general; the answer says which of them the knowledge base does not mention.
* **Parts**: a two-part question ("how long does a PA take and who submits it") is answered part by part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

#: Common shorthand of healthcare customer care; a tenant's ``glossary`` adds to it or overrides it.
SHORTHAND: dict[str, str] = {
    "pt": "patient",
    "pts": "patients",
    "pt's": "patient's",
    "rx": "prescription",
    "rxs": "prescriptions",
    "rx's": "prescriptions",
    "script": "prescription",
    "scripts": "prescriptions",
    "dob": "date of birth",
    "ins": "insurance",
    "appt": "appointment",
    "appts": "appointments",
    "dr": "doctor",
    "drs": "doctors",
    "md": "doctor",
    "np": "nurse practitioner",
    "med": "medicine",
    "meds": "medicines",
    "otc": "over-the-counter",
    "c-ii": "Schedule II",
    "cii": "Schedule II",
    "c2": "Schedule II",
    "c-iii": "Schedule III",
    "ciii": "Schedule III",
    "c-iv": "Schedule IV",
    "civ": "Schedule IV",
    "c-v": "Schedule V",
    "prn": "as needed",
    "po box": "P.O. box",
    "sat": "Saturday",
    "sun": "Sunday",
    "mon": "Monday",
    "tues": "Tuesday",
    "wed": "Wednesday",
    "thurs": "Thursday",
    "fri": "Friday",
    "tmrw": "tomorrow",
    "weekday": "weekday (Monday to Friday)",
    "weekdays": "weekdays (Monday to Friday)",
    "weekend": "weekend (Saturday or Sunday)",
    "weekends": "weekends (Saturday or Sunday)",
    "yo": "year-old",
    "approx": "approximately",
    "info": "information",
    "w/": "with",
    "w/o": "without",
    "b/c": "because",
    "tele": "telehealth",
    "telemed": "telehealth",
    "hrs": "hours",
    "hr": "hour",
    "mins": "minutes",
    "txt": "text",
    "txts": "texts",
    "msg": "message",
    "msgs": "messages",
    "wk": "week",
    "wks": "weeks",
    "yr": "year",
    "yrs": "years",
    "dept": "department",
    "pharm": "pharmacy",
    "rph": "pharmacist",
    "tech": "technician",
    "techs": "technicians",
}


def _listed(text: str) -> tuple[str, ...]:
    return tuple(re.split(r",\s+", text.strip()))


#: US states, the District of Columbia and the territories: "do we ship to alaska" is asked of a knowledge base that
#: says "all 50 US states", and "pt is in florida this week, can she still do a video visit" of one that says "a
#: state where the clinician is licensed". A tenant's glossary can override an entry.
US_STATES = _listed(
    """Alabama, Alaska, Arizona, Arkansas, California, Colorado, Connecticut, Delaware, Florida, Georgia, Hawaii, Idaho,
    Illinois, Indiana, Iowa, Kansas, Kentucky, Louisiana, Maine, Maryland, Massachusetts, Michigan, Minnesota,
    Mississippi, Missouri, Montana, Nebraska, Nevada, New Hampshire, New Jersey, New Mexico, New York, North Carolina,
    North Dakota, Ohio, Oklahoma, Oregon, Pennsylvania, Rhode Island, South Carolina, South Dakota, Tennessee, Texas,
    Utah, Vermont, Virginia, Washington, West Virginia, Wisconsin, Wyoming"""
)
US_TERRITORIES: tuple[str, ...] = ("District of Columbia", "Puerto Rico", "Guam", "US Virgin Islands")
STATES_GLOSSARY: dict[str, str] = {name.lower(): f"{name} (a US state)" for name in US_STATES} | {
    name.lower(): f"{name} (a US territory)" for name in US_TERRITORIES
}

#: Common controlled substances by their federal (DEA) schedule: agents name the drug ("pt's adderall"), a pharmacy
#: knowledge base names the schedule ("Schedule II controlled substances ... cannot be transferred"). Brand and
#: generic names; state schedules can be stricter, and a tenant's glossary can override an entry.
CONTROLLED_SUBSTANCES: dict[str, tuple[str, ...]] = {
    "II": _listed(
        """Adderall, amphetamine, Vyvanse, lisdexamfetamine, Dexedrine, dextroamphetamine, Ritalin, Concerta,
        methylphenidate, Focalin, dexmethylphenidate, oxycodone, OxyContin, Percocet, hydrocodone, Norco, Vicodin,
        morphine, fentanyl, hydromorphone, Dilaudid, methadone"""
    ),
    "III": _listed("testosterone, buprenorphine, Suboxone, ketamine"),
    "IV": _listed(
        """alprazolam, Xanax, clonazepam, Klonopin, diazepam, Valium, lorazepam, Ativan, zolpidem, Ambien, eszopiclone,
        Lunesta, temazepam, tramadol, Ultram, phentermine, modafinil, Provigil, carisoprodol, Soma"""
    ),
    "V": _listed("pregabalin, Lyrica, Lomotil, lacosamide, Vimpat"),
}
# "adderall" reads "Adderall (a Schedule II controlled substance)"; "xanax" reads "Xanax (a controlled substance,
# Schedule IV)": knowledge bases group Schedules III to V ("may be transferred only one time"), and a sentence about
# Schedule II is not one about Schedule IV however alike the two read
SCHEDULES_GLOSSARY: dict[str, str] = {
    name.lower(): f"{name} (a Schedule II controlled substance)"
    if schedule == "II"
    else f"{name} (a controlled substance, Schedule {schedule})"
    for schedule, names in CONTROLLED_SUBSTANCES.items()
    for name in names
} | {"oxy": "oxycodone (a Schedule II controlled substance)"}

#: The built-in word lists a tenant reads its questions with (``tenants[].builtin_glossaries``, all by default): a
#: knowledge base about side effects, not dispensing, has no use for "Schedule II" after every drug it names.
BUILTIN_GLOSSARIES: dict[str, dict[str, str]] = {
    "shorthand": SHORTHAND,
    "us_states": STATES_GLOSSARY,
    "controlled_substances": SCHEDULES_GLOSSARY,
}
DEFAULT_GLOSSARY: dict[str, str] = {k: v for glossary in BUILTIN_GLOSSARIES.values() for k, v in glossary.items()}


def tenant_glossary(builtins: Iterable[str], own: Mapping[str, str]) -> dict[str, str]:
    """The built-in lists ``builtins`` names, then the tenant's own ``glossary``, which overrides an entry."""
    merged = {k: v for name in builtins for k, v in BUILTIN_GLOSSARIES[name].items()}
    return {**merged, **own}


#: words after or before which a short token is a code: "reject 75", "75 reject", "code MR"
CODE_WORDS = frozenset(
    {
        "code",
        "codes",
        "reject",
        "rejects",
        "rejected",
        "rejecting",
        "rejection",
        "rejections",
        "rej",
        "error",
        "errors",
        "denial",
        "denied",
    }
)
#: a token shaped like a code: a number of up to four digits, up to three capitals with optional digits, or "M/I"
_CODE_TOKEN = re.compile(r"^(?:\d{1,4}|[A-Za-z]{1,3}\d{0,3}|[A-Za-z0-9]{1,2}/[A-Za-z0-9]{1,2})$")
#: words between a code word and its code, or between codes of one list ("codes 70 and MR")
_FILLER = frozenset({"a", "an", "the", "of", "with", "for", "is", "was", "number", "no", "#", ":"})
_LIST_JOINERS = frozenset({"and", "or", ",", "/", "vs", "versus", "&"})
#: words after a number that make it a quantity, not a code
_UNITS = re.compile(
    r"^(?:%|percent|pct|day|days|business|hour|hours|hr|hrs|minute|minutes|min|mins|week|weeks|month|months|"
    r"year|years|yr|yrs|mg|mcg|ml|g|kg|tablet|tablets|tabs|pill|pills|capsule|capsules|refill|refills|"
    r"times|x|am|pm|a\.m|p\.m|dollars|cents|usd|states|digit|digits)$",
    re.IGNORECASE,
)
#: a dash between words ("Code 79 — Refill too soon", "Reject 25 - verify NPI") is a token: it ends a quantity
_TOKEN = re.compile(r"\$?\d+(?:\.\d+)?%?|[A-Za-z0-9]+(?:[/'’-][A-Za-z0-9]+)*%?|[,&#:—–]|(?<!\S)-(?!\S)")
#: alphabetic tokens that look like codes but are ordinary words in agents' questions
_NOT_CODES = frozenset({"a", "i", "is", "it", "in", "on", "to", "do", "be", "an", "as", "at", "by", "if", "me", "my"})
#: "and" opens a second question with a question word or an auxiliary ("and is her copay different", "and do cash
#: purchases count"), but not an auxiliary that goes on with the same clause ("she works from home and would rather
#: not come in")
_SPLIT_PARTS = re.compile(
    r"\?\s+(?=\S)|;\s*|\.\s+(?=(?:also|and|plus)\s)|\s+(?:and|also|plus)\s+(?=(?:how|what|when|where|who|why|which|whats|what's)\b|"
    r"(?:can|could|does|do|is|are|should|will|would)\b(?!\s+(?:rather|like|love|prefer|not|never|also|just|still|"
    r"really|be|have|get|need|want|go|come)\b))",
    re.IGNORECASE,
)
_KEY_STOP = frozenset(
    {
        "i",
        "i'm",
        "im",
        "hi",
        "hello",
        "thanks",
        "ok",
        "okay",
        "please",
        "pls",
        "the",
        "a",
        "what",
        "how",
        "can",
        "does",
        "do",
        "is",
        "are",
        "when",
        "who",
        "why",
        "which",
        "where",
    }
)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _canonical(code: str) -> str:
    return code.upper().replace("’", "'")


def _looks_like_code(token: str, *, lowercase_ok: bool = False) -> bool:
    if not _CODE_TOKEN.match(token) or token.lower() in _NOT_CODES or token.lower() in ENGLISH_STOP_WORDS:
        return False
    return lowercase_ok or any(ch.isdigit() for ch in token) or token.upper() == token


#: "0 refills", "zero refills left": how an agent types what the knowledge base writes "no refills"
_NONE = re.compile(r"(?<![\w$.,/-])(?:0|zero)\s+(?=[A-Za-z])", re.IGNORECASE)


def _no_count(text: str) -> str:
    """Read "0 refills" as "no refills"; "code 0" stays a code."""

    def none(match: re.Match[str]) -> str:
        before = text[: match.start()].split()
        return match.group(0) if before and before[-1].lower() in CODE_WORDS else "no "

    return _NONE.sub(none, text)


def expand(text: str, glossary: Mapping[str, str]) -> str:
    """``text`` with every glossary term (a whole word or phrase, any case) replaced by its expansion."""
    if not glossary:
        return text
    keys = sorted(glossary, key=len, reverse=True)  # "prior auth" before "pa"
    pattern = re.compile(
        r"(?<![\w/'’-])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w/'’-])",
        re.IGNORECASE,
    )
    lookup = {k.lower(): v for k, v in glossary.items()}
    return pattern.sub(lambda m: lookup[m.group(1).lower()], text)


def _is_quantity(tokens: list[str], i: int) -> bool:
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    prev = tokens[i - 1] if i > 0 else ""
    return bool(_UNITS.match(nxt.rstrip("."))) or tokens[i].startswith("$") or tokens[i].endswith("%") or prev == "$"


def code_mentions(text: str, *, known: Iterable[str] = (), require_case: bool = True) -> list[str]:
    """The codes a text refers to, canonical (upper case), in order of appearance.

    A code is a code-shaped token next to a code word (skipping filler words and the joiners of a list of
    codes), or a token in ``known`` (codes the knowledge base uses) that is not a quantity. With
    ``require_case``, a bare alphabetic token counts only when written in capitals ("MR", not "mr").
    """
    tokens = _tokens(text)
    known_set = {_canonical(k) for k in known}
    found: list[str] = []

    def add(token: str) -> None:
        code = _canonical(token)
        if code not in found:
            found.append(code)

    lowered = [t.lower() for t in tokens]
    for i, word in enumerate(lowered):
        if word not in CODE_WORDS:
            continue
        # forwards: "reject code 75", "codes 70 and MR", "rejection code: MR"
        j = i + 1
        while j < len(tokens) and (lowered[j] in _FILLER or lowered[j] in CODE_WORDS):
            j += 1
        # a lower-case word is a code only right after "code" ("code mr"), never after "rejected" ("rejected bc")
        after_code = word in {"code", "codes"} and j == i + 1
        while j < len(tokens) and _looks_like_code(tokens[j], lowercase_ok=after_code) and not _is_quantity(tokens, j):
            add(tokens[j])
            if j + 2 < len(tokens) and lowered[j + 1] in _LIST_JOINERS and _looks_like_code(tokens[j + 2]):
                j += 2
                after_code = False
                continue
            break
        # backwards: "75 reject", "got a 75 rejection"
        # backwards only for numbers and "M/I" codes ("75 reject"): a word before "reject" names a kind ("a DUR reject")
        k = i - 1
        while k >= 0 and lowered[k] in _FILLER:
            k -= 1
        coded = k >= 0 and (any(ch.isdigit() for ch in tokens[k]) or "/" in tokens[k])
        if coded and _looks_like_code(tokens[k]) and not _is_quantity(tokens, k):
            add(tokens[k])
    for i, token in enumerate(tokens):
        code = _canonical(token)
        if code in known_set and code not in found and not _is_quantity(tokens, i):
            if token.isalpha() and require_case and not token.isupper():
                continue
            add(token)
    order = {c: text.upper().find(c) for c in found}
    return sorted(found, key=lambda c: order[c])


def key_names(text: str, *, skip: Iterable[str] = ()) -> dict[str, str]:
    """Numbers and capitalised names in a question (not its first word), lower-cased -> as written.

    Words in ``skip`` (the glossary's abbreviations, which are not names) are left out.
    """
    skipped = {s.lower() for s in skip}
    tokens = [t for t in _tokens(text) if t not in {",", "&", "#", ":"}]
    names: dict[str, str] = {}
    for i, token in enumerate(tokens):
        word = token.strip("$%")
        if not word or word.lower() in _KEY_STOP or word.lower() in skipped:
            continue
        if any(ch.isdigit() for ch in word):
            # a quantity keeps its unit: "7 days" is what the knowledge base does not mention, not "7"
            unit = tokens[i + 1] if i + 1 < len(tokens) and _UNITS.match(tokens[i + 1]) else ""
            name = f"{word} {unit}" if unit and unit not in {"%"} else word
            names.setdefault(name.lower(), name)
        elif i > 0 and word[0].isupper():
            names.setdefault(word.lower(), word)
    return names


def split_parts(question: str) -> list[str]:
    """The parts of a two-part question; a one-part question is its own only part."""
    pieces = [p.strip(" ?.,") for p in _SPLIT_PARTS.split(question)]
    parts = [p for p in pieces if len(re.findall(r"[A-Za-z]{3,}", p)) >= 2]
    return parts if len(parts) > 1 else [question]


@dataclass(frozen=True)
class Query:
    """A question as the answer step reads it."""

    text: str  # as the agent wrote it (whitespace normalised)
    expanded: str  # shorthand expanded: what is embedded and searched
    codes: tuple[str, ...] = ()
    names: dict[str, str] = field(default_factory=dict)  # other key words: lower-cased -> as written
    parts: tuple[str, ...] = ()  # expanded sub-questions; one part for a simple question

    @property
    def is_multi_part(self) -> bool:
        return len(self.parts) > 1


def analyse(question: str, glossary: Mapping[str, str], *, known_codes: Iterable[str] = ()) -> Query:
    """Read a question: expand its shorthand, find the codes that bind the answer, its names and its parts."""
    text = " ".join(question.split())
    expanded = _no_count(expand(text, glossary))
    codes = tuple(code_mentions(expanded, known=known_codes))
    names = {k: v for k, v in key_names(text, skip=glossary).items() if _canonical(k) not in codes}
    parts = tuple(split_parts(expanded))
    return Query(text=text, expanded=expanded, codes=codes, names=names, parts=parts)


def known_codes(texts: Iterable[str]) -> set[str]:
    """The codes a knowledge base's own texts name next to a code word ("Code 75", "codes 70 and MR")."""
    codes: set[str] = set()
    for text in texts:
        codes.update(code_mentions(text, require_case=True))
    return codes
