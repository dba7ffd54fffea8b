"""Prompt builders: each returns a :class:`Prompt` (text plus what a gateway could know about it)."""

from __future__ import annotations

import random
from typing import NamedTuple

from simulator import vocab as V


class Prompt(NamedTuple):
    text: str
    key: str  # template skeleton key (stands for prompt_template_id)
    cot: bool  # asks for step-by-step / full reasoning
    lang: str
    topic: str  # what an upstream topic classifier would say


def _cjk(lang: str) -> bool:
    return lang in ("zh", "ja")


def tokens_for(text: str, lang: str) -> int:
    """Rough token count of a prompt."""
    return max(1, int(len(text) / (1.4 if _cjk(lang) else 4.0)))


def extraction(rng: random.Random, lang: str, topic_index: int, templates: tuple[int, ...] | None = None) -> Prompt:
    domain, topic = V.SWEEP_TOPICS[topic_index % len(V.SWEEP_TOPICS)]
    choices = V.EXTRACTION_TEMPLATES[lang]
    i = rng.choice(templates) % len(choices) if templates else rng.randrange(len(choices))
    q = rng.choice(V.QUESTION_SKELETONS).format(a=rng.randint(2, 999), b=rng.randint(2, 999), c=rng.randint(2, 99))
    text = choices[i].format(topic=topic, question=q, cot=rng.choice(V.COT_PHRASES[lang]))
    return Prompt(text, f"extract.{i}.{lang}", True, lang, domain)


def tool_extraction(rng: random.Random, lang: str) -> Prompt:
    choices = V.TOOL_EXTRACTION_TEMPLATES.get(lang) or V.TOOL_EXTRACTION_TEMPLATES["en"]
    lang = lang if lang in V.TOOL_EXTRACTION_TEMPLATES else "en"
    i = rng.randrange(len(choices))
    text = choices[i].format(lang=rng.choice(V.CODE_LANGS), task=rng.choice(V.CODE_TASKS),
                             cot=rng.choice(V.COT_PHRASES[lang]))
    return Prompt(text, f"toolx.{i}.{lang}", True, lang, "cs")


def chat(rng: random.Random, lang: str, turn: int = 0) -> Prompt:
    lang = lang if lang in V.CHAT_TEMPLATES else "en"
    pool = V.CHAT_TEMPLATES[lang] if turn == 0 else V.FOLLOWUP_TEMPLATES[lang]
    i = rng.randrange(len(pool))
    text = pool[i].format(person=rng.choice(V.PEOPLE), thing=rng.choice(V.THINGS), food=rng.choice(V.FOODS),
                          place=rng.choice(V.PLACES))
    topic = ("writing", "cooking", "travel", "writing", "business", "marketing")[i % 6] if turn == 0 else "followup"
    return Prompt(text, f"chat.{'first' if turn == 0 else 'follow'}.{i}.{lang}", False, lang, topic)


def code(rng: random.Random, turn: int = 0) -> Prompt:
    if turn == 0:
        pool = V.CODE_TEMPLATES["en"]
        i = rng.randrange(len(pool))
        text = pool[i].format(lang=rng.choice(V.CODE_LANGS), task=rng.choice(V.CODE_TASKS))
        return Prompt(text, f"code.{i}.en", False, "en", "cs")
    i = rng.randrange(len(V.CODE_FOLLOWUPS))
    return Prompt(V.CODE_FOLLOWUPS[i].format(a=rng.randint(1, 400)), f"code.tool_result.{i}", False, "en", "cs")


def batch(rng: random.Random, key: str) -> Prompt:
    text = V.BATCH_TEMPLATES[key].format(
        review=" ".join(rng.sample(V.REVIEW_WORDS, 3)), vendor=f"ACME-{rng.randint(100, 999)}",
        date=f"2026-0{rng.randint(1, 9)}-{rng.randint(10, 28)}", amount=f"{rng.randint(5, 9000)}.{rng.randint(0, 99):02d}",
        currency=rng.choice(("EUR", "USD", "GBP", "JPY")), product=rng.choice(V.PRODUCTS))
    return Prompt(text, key, False, "en", "classification")


def eval_question(rng: random.Random, item: int) -> Prompt:
    """Benchmark item ``item`` (fixed pool: the same item gives the same text)."""
    r = random.Random(item)  # deterministic per item, independent of the caller's stream
    pool = V.EVAL_TEMPLATES["en"]
    i = item % len(pool)
    q = V.QUESTION_SKELETONS[item % len(V.QUESTION_SKELETONS)].format(a=r.randint(2, 99), b=r.randint(2, 99), c=r.randint(2, 9))
    subject = V.BENCH_SUBJECTS[item % len(V.BENCH_SUBJECTS)]
    text = pool[i].format(question=q, subject=subject, a=r.randint(1, 50), b=r.randint(1, 50), c=r.randint(1, 50),
                          d=r.randint(1, 50))
    return Prompt(text, f"eval.{i}.en", True, "en", subject.split()[-1])


def rag(rng: random.Random, lang: str) -> Prompt:
    lang = lang if lang in V.RAG_TEMPLATES else "en"
    product = rng.choice(V.PRODUCTS)
    q = rng.choice(V.RAG_QUESTIONS[lang]).format(product=product)
    text = V.RAG_TEMPLATES[lang][0].format(a=rng.randint(1, 900), b=rng.randint(3, 30), c=rng.randint(1, 900),
                                          d=rng.randint(3, 14), product=product, question=q)
    return Prompt(text, f"rag.0.{lang}", False, lang, "support")


def probe(rng: random.Random, i: int) -> Prompt:
    r = random.Random(i)
    tpl = V.PROBE_TEMPLATES[i % len(V.PROBE_TEMPLATES)]
    text = tpl.format(place=r.choice(V.PLACES), a=r.randint(2, 9999), b=r.randint(2, 9999), thing=r.choice(V.THINGS))
    return Prompt(text, f"probe.{i % len(V.PROBE_TEMPLATES)}", False, "en", "trivia")


_SCHOOL = [i for i, (d, _t) in enumerate(V.SWEEP_TOPICS) if d in V.SCHOOL_DOMAINS]


def homework(rng: random.Random, lang: str, turn: int = 0) -> Prompt:
    """A student's question (CoT phrasing on the first turn) or a follow-up."""
    lang = lang if lang in V.HOMEWORK_TEMPLATES else "en"
    if turn > 0:
        pool = V.HOMEWORK_FOLLOWUPS[lang]
        i = rng.randrange(len(pool))
        return Prompt(pool[i], f"homework.follow.{i}.{lang}", False, lang, "education")
    domain, topic = V.SWEEP_TOPICS[rng.choice(_SCHOOL)]
    pool = V.HOMEWORK_TEMPLATES[lang]
    i = rng.randrange(len(pool))
    q = rng.choice(V.QUESTION_SKELETONS[:3]).format(a=rng.randint(2, 99), b=rng.randint(2, 99), c=rng.randint(2, 20))
    return Prompt(pool[i].format(topic=topic, question=q), f"homework.{i}.{lang}", True, lang, domain)
