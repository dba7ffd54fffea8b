"""Features derived from the raw prompt text at ingest (the text itself is never kept).

:func:`prompt_features` is the codec's ``prompt_hook``: it returns a 64-bit
SimHash fingerprint, a template id, a multilingual chain-of-thought
elicitation flag and the prompt length. All hashes use ``blake2b`` so they are
stable across processes and Python versions (never the randomised ``hash()``).
"""

from __future__ import annotations

import re
from hashlib import blake2b
from typing import Any

import numpy as np

__all__ = ["prompt_features", "simhash", "template_id", "cot_elicitation", "hamming", "COT_PATTERNS"]

# Tokens: a CJK / kana / hangul character is one token (those scripts have no spaces),
# otherwise runs of letters, runs of digits (masked for templates) and quoted strings.
_TOKEN = re.compile(
    r"\"[^\"\n]{0,200}\"|'[^'\n]{1,200}'|«[^»\n]{0,200}»|“[^”\n]{0,200}”|「[^」\n]{0,200}」"
    r"|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
    r"|\d+(?:[.,]\d+)*"
    r"|[^\W\d_]+",
    re.UNICODE,
)
_HEAD, _TAIL = 5, 4  # template skeleton: leading and trailing token runs kept

# Chain-of-thought / hidden-reasoning elicitation, by language. Case-insensitive search.
COT_PATTERNS: dict[str, str] = {
    "en": r"step[\s-]*by[\s-]*step|think(ing)?\s+(it\s+|this\s+)?through|show\s+(me\s+)?(all\s+)?(your|the)\s+"
    r"(reasoning|work|thinking|thought|steps|derivation)|explain\s+(your|the)\s+reasoning|chain[\s-]*of[\s-]*thought"
    r"|let'?s\s+think|reason\s+(carefully|step|through)|walk\s+me\s+through|(hidden|internal|inner|full|raw)\s+"
    r"(reasoning|thoughts?|thinking|monologue)|thought\s+process|reasoning\s+(trace|process|steps)|scratch\s?pad"
    r"|before\s+(you\s+)?answer(ing)?,?\s+(think|reason|explain)|(each|every|all)\s+(the\s+)?steps?\s+of\s+(your|the)\s+"
    r"(reasoning|thinking|work|solution|derivation|proof)|(show|explain|detail|write\s+out|justify)\s+(me\s+)?"
    r"(each|every|all)\s+(of\s+)?(the\s+|your\s+)?(intermediate\s+)?steps?|intermediate\s+(reasoning|steps|thoughts)"
    r"|(don'?t|do\s+not|never)\s+skip\s+(any\s+)?steps|(full|complete|entire)\s+(reasoning|derivation|chain\s+of\s+thought)",
    "es": r"paso\s+a\s+paso|(muestra|explica|detalla)\w*\s+(tu|su|el)\s+razonamiento|razona\w*\s+(con\s+cuidado|paso)"
    r"|proceso\s+de\s+pensamiento|cadena\s+de\s+pensamiento|piensa\s+(detenidamente|con\s+calma)"
    r"|(cada|todos\s+los)\s+pasos?\s+de\s+(tu|su|el)\s+razonamiento|razonamiento\s+(completo|detallado)"
    r"|pasos\s+intermedios|no\s+(te\s+)?saltes\s+(ning[úu]n\s+)?paso",
    "fr": r"[ée]tape\s+par\s+[ée]tape|(montre|explique|d[ée]taille)\w*\s+(ton|votre|le)\s+raisonnement"
    r"|raisonne\w*\s+(pas\s+[àa]\s+pas|[ée]tape)|cha[iî]ne\s+de\s+pens[ée]e|processus\s+de\s+r[ée]flexion|pas\s+[àa]\s+pas"
    r"|(chaque|toutes\s+les)\s+[ée]tapes?\s+de\s+(ton|votre|le)\s+raisonnement|raisonnement\s+(complet|d[ée]taill[ée])"
    r"|[ée]tapes\s+interm[ée]diaires",
    "de": r"schritt\s+f[üu]r\s+schritt|schrittweise|(zeig|erkl[äa]r)\w*\s+(mir\s+)?(deinen|ihren|den)\s+"
    r"(l[öo]sungsweg|gedankengang|denkprozess)|denk\w*\s+(gr[üu]ndlich\s+)?nach|gedankenkette|begr[üu]nde\s+jeden\s+schritt"
    r"|jede[nr]?\s+schritt\s+(deiner|ihrer|der|des)\s+(\w+\s+)?([üu]berlegung|argumentation|herleitung|l[öo]sung)"
    r"|(deine|ihre)\s+(vollst[äa]ndige|komplette|ganze)\s+(begr[üu]ndung|[üu]berlegung|herleitung|argumentation)"
    r"|zwischenschritte",
    "pt": r"passo\s+a\s+passo|(mostre|explique|detalhe)\w*\s+(seu|o\s+seu|o)\s+racioc[íi]nio|cadeia\s+de\s+pensamento"
    r"|processo\s+de\s+pensamento|pense\s+com\s+cuidado",
    "it": r"passo\s+(dopo\s+)?passo|(mostra|spiega|illustra)\w*\s+(il\s+tuo|il)\s+ragionamento|catena\s+di\s+pensiero"
    r"|processo\s+di\s+pensiero|ragiona\s+(con\s+calma|attentamente)",
    "nl": r"stap\s+voor\s+stap|redeneer\w*|gedachtegang",
    "pl": r"krok\s+po\s+kroku|tok\s+rozumowania",
    "tr": r"ad[ıi]m\s+ad[ıi]m|d[üu][şs][üu]nce\s+s[üu]reci",
    "ru": r"шаг\s+за\s+шагом|пошагов|(покажи|объясни|опиши)\w*\s+(свои|своё|свое|ход)\s*(рассуждени|мысл)|ход\s+(своих\s+)?мысл"
    r"|цепочк\w+\s+рассуждени|подумай\s+(хорошо|внимательно)|рассужда\w+\s+последовательно",
    "zh": r"一步一步|一步步|逐步|分步|循序渐进|思考过程|推理过程|思维链|思路|详细推理|展示.{0,4}推理|解题过程|逐步推理",
    "ja": r"ステップ\s*バイ\s*ステップ|段階的に|順を追って|一歩ずつ|思考過程|推論過程|考え方を(示|説明)|思考の連鎖|推論の過程",
    "ko": r"단계별로|단계적으로|차근차근|한\s*단계씩|추론\s*과정|생각\s*과정|사고\s*과정|풀이\s*과정",
}
# Cheap literal anchors per language: a language's regex runs only when one of them is a substring of the
# lower-cased prompt (substring tests are C-speed; the full alternation is not).
COT_ANCHORS: dict[str, tuple[str, ...]] = {
    "en": ("step", "think", "reason", "show", "chain", "thought", "walk", "scratch", "hidden", "internal", "inner",
           "full", "raw", "before", "complete", "entire", "derivation"),
    "es": ("paso", "razona", "pensamiento", "piensa"),
    "fr": ("tape", "raisonn", "pens", "pas", "flexion"),
    "de": ("schritt", "gedank", "denk", "sungsweg", "begr", "berleg", "herleit", "argument"),
    "pt": ("passo", "racioc", "pensamento", "pense"),
    "it": ("passo", "ragiona", "pensiero"),
    "nl": ("stap", "redeneer", "gedachte"),
    "pl": ("krok", "rozumowania"),
    "tr": ("ad", "s"),
    "ru": ("шаг", "пошагов", "рассужд", "мысл", "подумай"),
    "zh": ("步", "思", "推理", "循序", "过程"),
    "ja": ("ステップ", "段階", "順を追", "一歩", "思考", "推論", "考え方"),
    "ko": ("단계", "차근", "과정"),
}
_COT_BY_LANG = [(COT_ANCHORS[lang], re.compile(pat, re.UNICODE)) for lang, pat in COT_PATTERNS.items()]
# Searched on the lower-cased text (faster than IGNORECASE on a large alternation).
_COT = re.compile("|".join(f"(?:{p})" for p in COT_PATTERNS.values()), re.UNICODE)


def _cot_search(low: str) -> bool:
    for anchors, rx in _COT_BY_LANG:
        for a in anchors:
            if a in low:
                if rx.search(low) is not None:
                    return True
                break
    return False

_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little").astype(np.int32)


def _h64(data: str) -> int:
    return int.from_bytes(blake2b(data.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _tokens(lowered: str) -> list[str]:
    return _TOKEN.findall(lowered)


_TOKEN_HASH: dict[str, int] = {}
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _token_hash(tok: str) -> int:
    h = _TOKEN_HASH.get(tok)
    if h is None:
        if len(_TOKEN_HASH) >= 200_000:  # bounded cache of per-token hashes
            _TOKEN_HASH.clear()
        h = _TOKEN_HASH[tok] = _h64(tok)
    return h


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised (wrapping uint64 arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def simhash(text: str) -> str:
    """64-bit SimHash of the prompt's word bigrams (unigrams for one-word prompts), as 16 lower-case hex chars.

    Near-duplicate prompts (one template, different fillers) land within a
    small Hamming distance; unrelated prompts differ in ~32 bits.
    """
    return _simhash_tokens(_tokens(text.lower()))


def _simhash_tokens(toks: list[str]) -> str:
    if not toks:
        return "0" * 16
    if len(toks) > 4096:  # bound the cost of huge prompts; the head and tail decide
        toks = toks[:2048] + toks[-2048:]
    th = np.fromiter((_token_hash(t) for t in toks), dtype=np.uint64, count=len(toks))
    if len(th) > 1:  # word bigrams: hash of (previous, current) token hashes
        with np.errstate(over="ignore"):
            sh = _mix(th[:-1] * _M1 ^ _mix(th[1:]))
    else:
        sh = th
    arr = sh.view(np.uint8)  # little-endian bytes of each shingle hash
    bits = _BITS[arr].reshape(len(sh), 64)
    votes = bits.sum(axis=0) * 2 - len(sh)
    value = 0
    for i in np.flatnonzero(votes > 0).tolist():
        value |= 1 << i
    return f"{value:016x}"


def _skeleton_token(tok: str) -> str:
    c = tok[0]
    if c.isdigit():
        return "<n>"
    if c in "\"'«“「":
        return "<q>"
    return tok


def template_id(text: str) -> str:
    """Id of the prompt skeleton: lower-cased, numbers and quoted strings masked, leading and trailing token runs kept.

    Prompts generated from one template with varying fillers in the middle
    share the id; the id is a 16-hex-char blake2b hash of the skeleton.
    """
    return _template_tokens(_tokens(text.lower()))


def _template_tokens(toks: list[str]) -> str:
    sk = [_skeleton_token(t) for t in toks]
    if len(sk) > _HEAD + _TAIL:
        sk = sk[:_HEAD] + ["…"] + sk[-_TAIL:]
    return f"{_h64(' '.join(sk)):016x}"


def cot_elicitation(text: str) -> bool:
    """True when the prompt asks for step-by-step or hidden reasoning (en, es, fr, de, pt, it, nl, pl, tr, ru, zh, ja, ko)."""
    return _cot_search(text.lower())


def hamming(a: str | int, b: str | int) -> int:
    """Hamming distance of two 64-bit fingerprints (hex strings or ints)."""
    x = (int(a, 16) if isinstance(a, str) else a) ^ (int(b, 16) if isinstance(b, str) else b)
    return x.bit_count()


def prompt_features(text: str) -> dict[str, Any]:
    """The codec's prompt hook: derived fields that replace ``prompt_text`` (which is then dropped)."""
    low = text.lower()
    toks = _tokens(low)
    return {
        "prompt_fingerprint": _simhash_tokens(toks),
        "prompt_template_id": _template_tokens(toks),
        "cot_elicitation": _cot_search(low),
        "prompt_chars": len(text),
    }
