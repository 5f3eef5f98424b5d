#!/usr/bin/env python3
"""Writes the toy data files in examples/data/, one for each data-file task:

  sentiment.jsonl  classify  {"text": ..., "label": "positive" | "negative"}; "not" flips a review
  dates.jsonl      seq2seq   {"source": "march 5 2024", "target": "2024 03 05"} in three spellings
  tiny.txt         lm        short sentences from a small grammar, ten to a line

Deterministic (seeded); run from the repository root: python3 scripts/make_example_data.py
"""
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "examples" / "data"


def sentiment(rng, n=1600):
    things = ["the movie", "the food", "the service", "the hotel", "this book", "the concert",
              "the game", "the room", "the staff", "the show", "the song", "the coffee"]
    good = ["good", "great", "lovely", "excellent", "wonderful", "fun", "amazing", "nice"]
    bad = ["bad", "awful", "boring", "terrible", "dull", "poor", "horrible", "bland"]
    adverbs = ["", "", "really ", "very ", "quite ", "truly "]
    tails = ["", "", ".", " at all.", " overall.", " to be honest.", "!"]
    lines = []
    for _ in range(n):
        positive = rng.random() < 0.5
        negated = rng.random() < 0.4
        word = rng.choice(good if positive != negated else bad)
        verb = rng.choice(["was", "is", "seemed"])
        text = f"{rng.choice(things)} {verb} {'not ' if negated else ''}{rng.choice(adverbs)}{word}"
        text = text[0].upper() + text[1:] + rng.choice(tails)
        lines.append({"text": text, "label": "positive" if positive else "negative"})
    return lines


def dates(rng, n=2000):
    months = ["january", "february", "march", "april", "may", "june", "july", "august",
              "september", "october", "november", "december"]
    days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    suffix = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}
    lines = []
    for _ in range(n):
        m = rng.randrange(12)
        d = rng.randrange(1, days[m] + 1)
        y = rng.randrange(1990, 2030)
        form = rng.randrange(3)
        if form == 0:
            source = f"{months[m]} {d} {y}"
        elif form == 1:
            source = f"{d} {months[m]} {y}"
        else:
            source = f"the {d}{suffix.get(d, 'th')} of {months[m]} {y}"
        lines.append({"source": source, "target": f"{y} {m + 1:02d} {d:02d}"})
    return lines


def tiny(rng, sentences=1500):
    names = ["Anna", "Ben", "the cat", "the dog", "a bird", "my aunt", "the farmer", "Lily"]
    verbs = ["saw", "liked", "found", "chased", "painted", "followed", "heard", "fed"]
    things = ["a red ball", "the old tree", "a small boat", "the blue door", "a warm loaf",
              "the green hill", "a quiet fox", "the little house"]
    places = ["in the garden", "by the river", "at the market", "near the school",
              "under the bridge", "on the hill"]
    times = ["", "", "in the morning", "after lunch", "at night", "every day"]
    out, line = [], []
    for i in range(sentences):
        parts = [rng.choice(names), rng.choice(verbs), rng.choice(things), rng.choice(places),
                 rng.choice(times)]
        s = " ".join(p for p in parts if p)
        line.append(s[0].upper() + s[1:] + ".")
        if len(line) == 10:
            out.append(" ".join(line))
            line = []
    if line:
        out.append(" ".join(line))
    return "\n".join(out) + "\n"


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_jsonl(OUT / "sentiment.jsonl", sentiment(random.Random(1)))
    write_jsonl(OUT / "dates.jsonl", dates(random.Random(2)))
    (OUT / "tiny.txt").write_text(tiny(random.Random(3)))
    for f in sorted(OUT.iterdir()):
        print(f"{f.relative_to(OUT.parent.parent)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
