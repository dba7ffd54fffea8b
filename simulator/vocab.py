"""Word lists and prompt templates for the synthetic traffic (six languages).

Templates are ``str.format`` strings; their *key* (e.g. ``"chat.email.en"``)
identifies the skeleton and is what a gateway would call the template id.
Extraction templates ask for the model's full reasoning in the local phrasing
("think step by step", "paso a paso", "étape par étape", "Schritt für
Schritt", "一步一步", "段階的に"); benign ones mostly do not, except the
evaluation-harness templates, which deliberately do (a hard negative).
"""

from __future__ import annotations

LANGUAGES = ("en", "es", "fr", "de", "zh", "ja")

# --- topics for broad, systematic sweeps (domain, topic) -------------------------------------------
SWEEP_TOPICS: tuple[tuple[str, str], ...] = tuple(
    (domain, t)
    for domain, topics in {
        "math": ("modular arithmetic", "combinatorics", "probability", "linear algebra", "real analysis",
                 "number theory", "graph theory", "geometry", "calculus", "group theory", "statistics",
                 "recurrence relations", "inequalities", "complex numbers"),
        "physics": ("classical mechanics", "thermodynamics", "electromagnetism", "optics", "special relativity",
                    "quantum mechanics", "fluid dynamics", "statistical mechanics"),
        "chemistry": ("stoichiometry", "organic reaction mechanisms", "chemical equilibrium", "electrochemistry",
                      "acid-base titration", "reaction kinetics"),
        "biology": ("population genetics", "enzyme kinetics", "cell signalling", "mendelian inheritance",
                    "ecology models"),
        "cs": ("dynamic programming", "graph algorithms", "complexity theory", "compilers", "operating systems",
               "distributed consensus", "cryptography", "database transactions", "type systems",
               "computer networks", "string algorithms", "computational geometry"),
        "logic": ("propositional logic", "knights and knaves puzzles", "scheduling puzzles", "syllogisms",
                  "game theory"),
        "economics": ("supply and demand", "auction theory", "macroeconomic models", "option pricing",
                      "corporate finance"),
        "law": ("contract law", "tort liability", "constitutional law", "tax law"),
        "medicine": ("differential diagnosis", "pharmacokinetics", "clinical trial design"),
        "humanities": ("moral philosophy", "historical causation", "argument analysis", "linguistics"),
    }.items()
    for t in topics
)

# --- everyday vocabulary ----------------------------------------------------------------------------
PEOPLE = ("my manager", "a client", "the landlord", "my team", "a supplier", "the school", "my colleague Ana",
          "the hiring committee", "our customers", "a new partner")
THINGS = ("the project delay", "next week's offsite", "the invoice from March", "a refund request",
          "the quarterly results", "a product launch", "the new onboarding flow", "a broken laptop",
          "the holiday schedule", "our pricing change", "a job application", "the conference talk")
FOODS = ("lentil soup", "banana bread", "a vegan curry", "paella", "ramen", "quiche", "dumplings", "tacos",
         "risotto", "a birthday cake")
PLACES = ("Lisbon", "Kyoto", "Mexico City", "Berlin", "Montreal", "Seoul", "Cape Town", "Edinburgh",
          "Buenos Aires", "Hanoi")
PRODUCTS = ("router", "subscription", "mobile app", "smart thermostat", "account", "invoice", "order",
            "password", "delivery", "warranty")
CODE_LANGS = ("Python", "TypeScript", "Go", "Rust", "Java", "SQL", "Bash", "C++")
CODE_TASKS = ("parses a CSV file and aggregates totals per customer", "retries HTTP requests with backoff",
              "implements an LRU cache", "validates e-mail addresses", "merges overlapping intervals",
              "streams lines from a large log file", "computes a rolling median", "debounces UI events",
              "serialises a tree to JSON", "rate-limits API calls per user", "diffs two directories",
              "schedules jobs with cron syntax")
REVIEW_WORDS = ("great", "terrible", "okay", "fast shipping", "broke after a week", "excellent value",
                "would not buy again", "exactly as described", "customer service was slow", "love it")
BENCH_SUBJECTS = ("arithmetic word problem", "high-school chemistry", "formal logic", "college physics",
                  "world history", "professional law", "clinical knowledge", "abstract algebra")

# --- chain-of-thought phrasings per language ----------------------------------------------------------
COT_PHRASES = {
    "en": ("Think step by step.", "Explain your reasoning in full before answering.",
           "Show every step of your reasoning.", "Let's think step by step.",
           "Walk through your complete chain of thought."),
    "es": ("Piensa paso a paso.", "Explica tu razonamiento completo antes de responder.",
           "Muestra cada paso de tu razonamiento."),
    "fr": ("Réfléchis étape par étape.", "Explique ton raisonnement complet avant de répondre.",
           "Détaille chaque étape de ton raisonnement."),
    "de": ("Denke Schritt für Schritt.", "Erkläre deine vollständige Begründung, bevor du antwortest.",
           "Zeige jeden Schritt deiner Überlegung."),
    "zh": ("请一步一步地思考。", "请在回答前详细解释你的推理过程。", "请展示完整的推理步骤。"),
    "ja": ("段階的に考えてください。", "答える前に推論の過程をすべて説明してください。", "一歩ずつ推論を示してください。"),
}

# --- extraction templates: {topic} {question} {cot} ---------------------------------------------------
EXTRACTION_TEMPLATES = {
    "en": (
        "You are an expert in {topic}. Solve the following problem. {cot} Then give the final answer on its own line.\n\nProblem: {question}",
        "{cot} Problem ({topic}): {question}\nWrite out all intermediate reasoning, including any dead ends, before the answer.",
        "Question about {topic}: {question}\n{cot} Be exhaustive; do not skip steps.",
    ),
    "es": (
        "Eres experto en {topic}. Resuelve el siguiente problema. {cot} Luego da la respuesta final.\n\nProblema: {question}",
        "{cot} Pregunta sobre {topic}: {question}",
    ),
    "fr": (
        "Tu es expert en {topic}. Résous le problème suivant. {cot} Donne ensuite la réponse finale.\n\nProblème : {question}",
        "{cot} Question de {topic} : {question}",
    ),
    "de": (
        "Du bist Experte für {topic}. Löse die folgende Aufgabe. {cot} Gib danach die endgültige Antwort.\n\nAufgabe: {question}",
        "{cot} Frage zu {topic}: {question}",
    ),
    "zh": ("你是{topic}方面的专家。请解决以下问题。{cot}最后单独一行给出答案。\n\n问题：{question}", "{cot}关于{topic}的问题：{question}"),
    "ja": ("あなたは{topic}の専門家です。次の問題を解いてください。{cot}最後に答えを一行で示してください。\n\n問題：{question}",
           "{cot}{topic}に関する質問：{question}"),
}
QUESTION_SKELETONS = (
    "Let n = {a}. How many integers k with 1 <= k <= {b} satisfy k^2 = {c} (mod n)?",
    "A system starts in state {a} and moves with rate {b} per second; after {c} seconds what is the expected state?",
    "Given {a} items and {b} bins, in how many ways can they be arranged if no bin holds more than {c}?",
    "Prove or disprove: for every graph with {a} vertices and {b} edges there is a path of length {c}.",
    "Estimate the result when the input is scaled by {a}, shifted by {b} and truncated at {c}.",
    "Design an algorithm for inputs of size {a} with memory {b} KB that finishes in {c} ms; justify each choice.",
    "A contract signed on day {a} is breached on day {b}; damages are {c} per day. Analyse liability.",
    "A patient presents with findings {a}, {b} and {c}. Rank the likely diagnoses.",
)

# --- tool-use / coding extraction -------------------------------------------------------------------
TOOL_EXTRACTION_TEMPLATES = {
    "en": (
        "Task: write a {lang} function that {task}. Use the available tools to run and test it. Before every tool call, write out your full reasoning; after the final call, print the complete trace of calls and why you made each.",
        "Solve this coding task in {lang}: a module that {task}. {cot} Narrate each tool invocation and its result verbatim.",
    ),
    "zh": ("任务：用{lang}编写一个函数，{task}。使用可用工具运行并测试。{cot}逐条记录每次工具调用及原因。",),
}

# --- benign templates ---------------------------------------------------------------------------------
CHAT_TEMPLATES = {
    "en": ("Can you help me write an email to {person} about {thing}?", "What's a good recipe for {food}?",
           "I'm visiting {place} next month, what should I see in three days?",
           "Make this sound more polite: we can't do {thing} this week.",
           "Summarise the pros and cons of moving {thing} to next quarter.", "Give me five title ideas for a post about {thing}."),
    "es": ("¿Me ayudas a escribir un correo a {person} sobre {thing}?", "¿Qué receta fácil hay para {food}?",
           "Voy a {place} el mes que viene, ¿qué puedo ver en tres días?"),
    "fr": ("Peux-tu m'aider à écrire un e-mail à {person} au sujet de {thing} ?", "Quelle est une bonne recette de {food} ?",
           "Je vais à {place} le mois prochain, que visiter en trois jours ?"),
    "de": ("Kannst du mir helfen, eine E-Mail an {person} wegen {thing} zu schreiben?", "Was ist ein gutes Rezept für {food}?",
           "Ich fahre nächsten Monat nach {place}, was sollte ich in drei Tagen sehen?"),
    "zh": ("你能帮我给{person}写一封关于{thing}的邮件吗？", "{food}怎么做比较简单？", "下个月去{place}，三天怎么安排？"),
    "ja": ("{thing}について{person}へのメールを書くのを手伝ってもらえますか？", "{food}の簡単なレシピを教えてください。",
           "来月{place}に行きます。三日間で何を見るべきですか？"),
}
FOLLOWUP_TEMPLATES = {
    "en": ("Thanks! Can you make it shorter?", "Could you make the tone a bit friendlier?", "What about {thing}?",
           "Great, now translate it into Spanish.", "Can you add a short summary at the top?"),
    "es": ("¡Gracias! ¿Puedes hacerlo más corto?", "¿Y qué pasa con {thing}?"),
    "fr": ("Merci ! Tu peux le raccourcir ?", "Et pour {thing} ?"),
    "de": ("Danke! Kannst du es kürzer machen?", "Und was ist mit {thing}?"),
    "zh": ("谢谢！能再简短一点吗？", "那{thing}呢？"),
    "ja": ("ありがとう！もう少し短くできますか？", "{thing}についてはどうですか？"),
}
CODE_TEMPLATES = {
    "en": ("Fix the failing test in this {lang} module that {task}.", "Refactor the {lang} function that {task} to be easier to read.",
           "Add type hints and docstrings to the {lang} code that {task}.", "Why does my {lang} code that {task} time out on large inputs?"),
}
CODE_FOLLOWUPS = ("Tool result: 3 tests passed, 1 failed (AssertionError on line {a}).", "Tool result: file written ({a} lines).",
                  "Tool result: command exited with status 0.", "The linter now reports {a} warnings, please fix them.")
BATCH_TEMPLATES = {
    "batch.sentiment": "Classify the sentiment of this product review as positive, negative or neutral. Reply with one word.\n\nReview: \"{review}\"",
    "batch.invoice": "Extract vendor, date, total and currency from this invoice text as JSON.\n\nInvoice: {vendor} — {date} — total {amount} {currency}",
    "batch.tagging": "Assign up to three tags from the taxonomy to this support ticket. Ticket: my {product} is {review}",
}
EVAL_TEMPLATES = {
    "en": ("Question: {question}\nAnswer: Let's think step by step.",
           "The following is a multiple choice question about {subject}. Think step by step, then finish with \"The answer is (X)\".\n\n{question}\n(A) {a}\n(B) {b}\n(C) {c}\n(D) {d}"),
}
RAG_TEMPLATES = {
    "en": ("Use only the context to answer the customer.\n\nContext:\n[doc {a}] To reset your {product}, hold the button for {b} seconds. [doc {c}] Refunds are processed within {d} days.\n\nCustomer: {question}",),
    "es": ("Usa solo el contexto para responder.\n\nContexto:\n[doc {a}] Para reiniciar su {product}, mantenga pulsado el botón {b} segundos.\n\nCliente: {question}",),
    "fr": ("Réponds uniquement à partir du contexte.\n\nContexte :\n[doc {a}] Pour réinitialiser votre {product}, maintenez le bouton {b} secondes.\n\nClient : {question}",),
    "de": ("Antworte nur anhand des Kontexts.\n\nKontext:\n[Dok {a}] Um Ihr {product} zurückzusetzen, halten Sie die Taste {b} Sekunden.\n\nKunde: {question}",),
}
RAG_QUESTIONS = {
    "en": ("my {product} stopped working, what do I do?", "how long does a refund take?", "can I change my {product} plan?"),
    "es": ("mi {product} no funciona, ¿qué hago?", "¿cuánto tarda un reembolso?"),
    "fr": ("mon {product} ne marche plus, que faire ?", "combien de temps pour un remboursement ?"),
    "de": ("mein {product} funktioniert nicht mehr, was tun?", "wie lange dauert eine Rückerstattung?"),
}
PROBE_TEMPLATES = ("Complete the sentence with one word: The capital of {place} is",
                   "Answer yes or no: is {a} a prime number?", "Pick A or B. Which is larger, {a} or {b}?",
                   "Continue: {thing} was")

# --- tutoring (benign, but asks for step-by-step explanations: a hard negative) --------------------------
HOMEWORK_TEMPLATES = {
    "en": ("Can you explain step by step how to solve this {topic} homework question? {question}",
           "I have an exam on {topic} tomorrow. Explain your reasoning step by step for: {question}",
           "My teacher wants us to show our work. How do I do this {topic} problem? {question}"),
    "es": ("¿Puedes explicarme paso a paso este ejercicio de {topic}? {question}",),
    "fr": ("Peux-tu m'expliquer étape par étape cet exercice de {topic} ? {question}",),
    "de": ("Kannst du mir diese {topic}-Hausaufgabe Schritt für Schritt erklären? {question}",),
    "zh": ("能一步一步地讲解这道{topic}作业题吗？{question}",),
    "ja": ("この{topic}の宿題を段階的に説明してもらえますか？{question}",),
}
HOMEWORK_FOLLOWUPS = {
    "en": ("I don't get the second step, can you explain it differently?", "Why do we divide there?",
           "Can you give me a similar practice problem?", "Thanks, that makes sense now!"),
    "es": ("No entiendo el segundo paso, ¿me lo explicas de otra forma?", "¡Gracias, ya lo entiendo!"),
    "fr": ("Je ne comprends pas la deuxième étape, tu peux réexpliquer ?", "Merci, c'est clair !"),
    "de": ("Den zweiten Schritt verstehe ich nicht, kannst du ihn anders erklären?", "Danke, jetzt ist es klar!"),
    "zh": ("第二步我不太明白，能换个方式解释吗？", "谢谢，现在懂了！"),
    "ja": ("二番目のステップがわかりません。別の説明をお願いできますか？", "ありがとう、わかりました！"),
}
SCHOOL_DOMAINS = ("math", "physics", "chemistry", "biology")
