"""Prompt-derived features: SimHash, template id, multilingual CoT flag, codec hook."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from detectors.features import cot_elicitation, hamming, prompt_features, simhash, template_id
from schemas import EventCodec

TEMPLATE = "Explain the following concept from {field} step by step: {item}. Show your full reasoning before the answer."


def test_simhash_format_and_determinism_across_processes() -> None:
    text = "Derive the closed form of the sum of the first n squares, step by step."
    fp = simhash(text)
    assert len(fp) == 16 and all(c in "0123456789abcdef" for c in fp)
    code = f"from detectors.features import simhash; print(simhash({text!r}))"
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout.strip())
    assert outs == {fp}


def test_near_duplicates_are_close_unrelated_prompts_far() -> None:
    a = TEMPLATE.format(field="quantum physics", item="entanglement of photons")
    b = TEMPLATE.format(field="quantum physics", item="decoherence of qubits")
    c = "What is a good recipe for a vegetarian lasagna with spinach and ricotta cheese for six people?"
    assert hamming(simhash(a), simhash(b)) <= 16
    assert hamming(simhash(a), simhash(c)) >= 20
    assert hamming(simhash(a), simhash(a)) == 0


def test_template_id_masks_fillers_numbers_and_quotes() -> None:
    a = TEMPLATE.format(field="biology", item="the Krebs cycle in eukaryotic cells")
    b = TEMPLATE.format(field="economics", item="price elasticity of demand and its 3 determinants")
    assert template_id(a) == template_id(b)
    assert template_id('Translate "hello" into French, item 12') == template_id('Translate "good night" into French, item 7')
    assert template_id(a) != template_id("Write a haiku about autumn leaves falling on a quiet pond.")


@pytest.mark.parametrize("text", [
    "Let's think step by step.", "Please show your reasoning before answering.", "Reveal your hidden chain of thought",
    "Explica tu razonamiento paso a paso.", "Réfléchis étape par étape.", "Denke Schritt für Schritt nach.",
    "Resolva passo a passo e mostre seu raciocínio.", "Ragiona passo dopo passo.", "Реши задачу шаг за шагом.",
    "请一步一步地思考并给出推理过程。", "段階的に考えてください。", "단계별로 설명해 주세요.", "WALK ME THROUGH your thought process",
    # "every step of the reasoning" and "do not skip steps" phrasings
    "Show each step of your work.", "Write out all the intermediate steps.", "Justify every step of the derivation.",
    "Do not skip any steps.", "Give your complete reasoning first.", "Muestra todos los pasos de su razonamiento.",
    "Incluye los pasos intermedios.", "Montre toutes les étapes de votre raisonnement.", "Donne un raisonnement détaillé.",
    "Zeige alle Zwischenschritte.", "Erkläre jeden Schritt der Herleitung.", "Schreib deine komplette Überlegung auf.",
])
def test_cot_elicitation_multilingual(text: str) -> None:
    assert cot_elicitation(text)


@pytest.mark.parametrize("text", [
    "What is the capital of France?", "Summarise this support ticket in one sentence.", "Translate to German: good morning",
    "Écris un poème sur la mer.", "東京の天気はどうですか？", "Напиши письмо коллеге.",
    "List all the steps to install Docker on Ubuntu.", "I don't get the second step, can you explain it differently?",
    "What are the next steps for the project?", "Den zweiten Schritt verstehe ich nicht.",
])
def test_cot_elicitation_negatives(text: str) -> None:
    assert not cot_elicitation(text)


def test_prompt_features_keys() -> None:
    f = prompt_features("Think step by step: what is 17 * 23?")
    assert set(f) == {"prompt_fingerprint", "prompt_template_id", "cot_elicitation", "prompt_chars"}
    assert f["cot_elicitation"] is True and f["prompt_chars"] == len("Think step by step: what is 17 * 23?")
    assert prompt_features("")["prompt_fingerprint"] == "0" * 16


def test_codec_hook_derives_features_and_drops_text() -> None:
    codec = EventCodec(prompt_hook=prompt_features)
    raw = {"event_id": "e1", "timestamp": "2026-06-25T11:32:00.123Z", "tenant_id": "t", "account_id": "a",
           "model": "m", "input_tokens": 1, "output_tokens": 2, "prompt_text": "Denke Schritt für Schritt nach: 2+2?"}
    ev = codec.decode(orjson.dumps(raw))
    assert "prompt_text" not in ev and "Schritt" not in orjson.dumps(ev).decode()
    assert ev["cot_elicitation"] is True and len(ev["prompt_fingerprint"]) == 16
    # gateway-sent fields win over derived ones
    ev2 = codec.decode(orjson.dumps({**raw, "prompt_fingerprint": "00000000000000ff", "cot_elicitation": False}))
    assert ev2["prompt_fingerprint"] == "00000000000000ff" and ev2["cot_elicitation"] is False


def test_anchored_cot_search_equals_the_full_pattern() -> None:
    import random

    from detectors.features import _COT, COT_PATTERNS, _cot_search

    rng = random.Random(3)
    phrases = ["step by step", "processus de réflexion", "pas à pas", "begründe jeden schritt", "思路", "풀이 과정",
               "tok rozumowania", "düşünce süreci", "before answering, think", "raw monologue", "hello there"]
    words = "the a step by show your reasoning pas à de paso schritt 思 步 단계 the of think raw full".split()
    corpus = phrases + [" ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) for _ in range(2000)]
    for text in corpus:
        assert _cot_search(text.lower()) == (_COT.search(text.lower()) is not None), text
    assert len(COT_PATTERNS) >= 10
