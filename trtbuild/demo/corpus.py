"""A small offline text corpus: trains the demo tokenizer and is the `builtin` calibration set.

The text is plain data written for trtbuild (no downloads). It mixes short and long English
sentences on varied topics, code-like lines, numbers, accented words, CJK and emoji, so a byte-level
BPE trained on it sees every kind of input a test might send, and calibration sees varied activations.
"""

from __future__ import annotations

_PARAGRAPHS = """\
The river bent twice before it reached the town, and each bend carried a different colour of silt.
In the morning the baker opened the shutters, set out the rye loaves and counted the coins from yesterday.
A compiler reads a program, checks that it makes sense, and writes out something a machine can run.
Quantization stores each weight with fewer bits; a scale factor maps the small integers back to real numbers.
The committee met on Tuesday at 10:30 and agreed to postpone the vote until the budget was ready.
She packed a thermos of tea, two apples, a notebook and a map of the northern trail.
Rain fell steadily over the harbour while the ferry waited for the last passengers from the train.
To build the engine, set the batch size, the longest input and the number of tokens per block.
My grandfather kept bees behind the barn; in August the whole yard smelled of honey and cut grass.
The spacecraft fired its thrusters for ninety seconds and settled into an orbit 420 kilometres up.
Please return the library books by Friday, or the fee rises to fifty cents for each day they are late.
Every good recipe lists its ingredients first, then the steps, then how long the dish should rest.
The server answered 503 for a minute, recovered, and then handled twelve thousand requests per second.
Owls hunt at night by sound alone: their ears sit at different heights on each side of the head.
He tuned the old piano by ear, one string at a time, humming the note under his breath.
The market opened higher on Monday after the central bank left interest rates unchanged.
A cache is only useful if you know exactly when its contents have gone stale.
Children ran along the beach chasing gulls, and the dog followed them, barking at the waves.
Mix the flour and the salt, add warm water slowly, and knead the dough for ten minutes.
The museum's new wing holds maps from the sixteenth century, drawn by hand on vellum.
Light from the nearest star other than the Sun takes a little over four years to reach us.
If the test fails, read the message first; it usually names the file and the line.
The volunteers planted three hundred oak saplings along the new cycle path last spring.
Her letter was short: the harvest was good, the roof still leaked, and the cat had kittens.
def add(a, b): return a + b  # a tiny function that adds two numbers
for i in range(3): print(i * i)  -> prints 0, 1 and 4
{"name": "tiny", "layers": 2, "heads": 4, "ok": true}
SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY id;
Temperatures: Mon 14°C, Tue 17°C, Wed 12°C, Thu 9°C; total rainfall 23.5 mm.
Prices rose 3.2% year on year, while wages grew by 4.1% over the same period.
Call me at 555-0142 after six, or send an e-mail to the office address.
The café on the corner serves crème brûlée, a rich dessert with a crust of burnt sugar.
Über den Wolken ist die Freiheit wohl grenzenlos, sang er leise vor sich hin.
El niño pidió una piña y un jugo de naranja en el mercado de la plaza.
À la fin de l'été, les feuilles du vieux châtaignier deviennent dorées.
São Paulo e Florianópolis são cidades brasileiras com histórias muito diferentes.
Zürich, Malmö, Ærø and Łódź are all names that need more than plain ASCII letters.
東京は日本の首都で、多くの人々が電車で通勤しています。
我们明天早上九点在图书馆见面，然后一起去吃午饭。
서울의 봄은 짧지만 벚꽃이 피면 거리가 아주 아름답습니다.
Москва стоит на реке, и зимой по ней ходят на лыжах.
Αθήνα είναι μια πόλη με μεγάλη ιστορία και πολύ ήλιο.
The launch went well 🚀 and the team celebrated with cake 🎂 and coffee ☕.
Weather today: ☀️ in the morning, 🌧️ after lunch, and a 🌈 over the hills at dusk.
I love this song ❤️ — it reminds me of summer evenings by the lake 🌅.
Thanks! 👍 See you tomorrow 👋 and don't forget the charger 🔌.
Mathematics has its own symbols: ∑ for sums, ∫ for integrals, π ≈ 3.14159 and √2 ≈ 1.414.
Arrows and marks: ← → ↑ ↓, ✓ done, ✗ failed, § 4.2, ¶ new paragraph, © 2024.
The tokenizer splits text into pieces; common words become one piece and rare words become several.
A language model predicts the next token, then feeds that token back in and predicts again.
When the power failed, the hospital switched to its generators within eight seconds.
The orchestra tuned to the oboe's A before the conductor walked on to polite applause.
Glaciers move slowly, but over a thousand years they carve valleys deep enough to hold lakes.
Remember to save your work often; a crash never warns you before it happens.
The recipe said a pinch of nutmeg, but he added a spoonful and nobody complained.
Two trains leave the station at noon, one heading east at eighty kilometres an hour.
After the storm, the fishermen mended their nets and checked every knot twice.
The first rule of debugging: make the failure happen again, on purpose, on your own machine.
Good documentation explains why, not only how, and it shows an example that actually runs.
Wind turbines turn to face the wind automatically, guided by a vane on the nacelle.
The students argued about whether a hot dog counts as a sandwich until the bell rang.
Patience is a tree whose root is bitter, but its fruit is very sweet.
"""


def corpus_text() -> str:
    """The whole corpus as one string (the demo tokenizer trains on it)."""
    return _PARAGRAPHS


def calibration_texts() -> tuple[str, ...]:
    """The `builtin` calibration set: one sample per non-empty line of the corpus, in order."""
    return tuple(line for line in _PARAGRAPHS.splitlines() if line.strip())
