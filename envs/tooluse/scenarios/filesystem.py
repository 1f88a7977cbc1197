"""File-system tasks: initial trees and user requests."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentgym.envs.tooluse.scenarios.common import (
    WORDS,
    Intent,
    Scene,
    choice,
    intent,
    sample,
    sentence,
)

DOMAIN = "filesystem"
FILE_STEMS = (
    "budget", "notes", "report", "todo", "draft", "summary", "invoice", "agenda", "ideas",
    "meeting", "plan", "results", "schedule", "recipes", "reading_list", "changelog",
    "roadmap", "minutes", "inventory", "timeline", "checklist", "feedback", "proposal",
)  # fmt: skip
EXTENSIONS = (".txt", ".md", ".csv", ".log")
DIR_NAMES = (
    "documents", "projects", "archive", "photos", "reports", "backup", "drafts", "research",
    "finance", "personal", "work", "shared", "travel", "music", "templates", "exports",
)  # fmt: skip


def _file_name(rng: np.random.Generator) -> str:
    suffix = f"_{int(rng.integers(1, 100))}" if rng.random() < 0.4 else ""
    return f"{choice(rng, FILE_STEMS)}{suffix}{choice(rng, EXTENSIONS)}"


def _content(rng: np.random.Generator, lines: int) -> str:
    picks = rng.integers(len(WORDS), size=(lines, 3)).tolist()
    numbers = rng.integers(1, 1000, size=lines).tolist()
    return "\n".join(
        f"{WORDS[a]} {WORDS[b]} {n} {WORDS[c]}" for (a, b, c), n in zip(picks, numbers, strict=True)
    )


def random_config(rng: np.random.Generator, long_context: bool) -> dict[str, Any]:
    """A workspace with a few directories and files (hundreds of extra files when long)."""
    tree: dict[str, Any] = {}
    for name in sample(rng, DIR_NAMES, int(rng.integers(2, 5))):
        tree[name] = {}
        for _ in range(int(rng.integers(0, 4))):
            tree[name][_file_name(rng)] = _content(rng, int(rng.integers(2, 7)))
    for _ in range(int(rng.integers(2, 6))):
        tree[_file_name(rng)] = _content(rng, int(rng.integers(2, 8)))
    if long_context:
        archive = tree.setdefault("logs", {})
        for index in range(int(rng.integers(40, 80))):
            archive[f"event_{index:04d}.log"] = _content(rng, int(rng.integers(10, 20)))
        for index in range(int(rng.integers(30, 60))):
            tree[f"scratch_{index:03d}.tmp"] = _content(rng, int(rng.integers(5, 15)))
    cwd: list[str] = []
    return {"tree": tree, "cwd": cwd}


def _here(scene: Scene) -> dict[str, Any]:
    fs = scene[DOMAIN]
    return fs._dir()


def _files(scene: Scene) -> list[str]:
    return sorted(n for n, v in _here(scene).items() if isinstance(v, str))


def _dirs(scene: Scene) -> list[str]:
    return sorted(n for n, v in _here(scene).items() if isinstance(v, dict))


def _new_name(rng: np.random.Generator, taken: Any, make: Any) -> str | None:
    for _ in range(20):
        name = make(rng)
        if name not in taken:
            return name
    return None


@intent(DOMAIN, level=1, missing=True)
def make_directory(rng: np.random.Generator, scene: Scene) -> Intent | None:
    name = _new_name(rng, _here(scene), lambda r: choice(r, DIR_NAMES) + choice(r, ("", "_new")))
    if name is None:
        return None
    scene.run("mkdir", dir_name=name)
    text = choice(
        rng,
        (
            f"Create a new folder called '{name}' in the current directory.",
            f"Please make a directory named '{name}' here.",
        ),
    )
    return Intent(
        text,
        answer=f"I created the folder '{name}'.",
        vague="Please create a new folder here for me.",
        ask="Sure. What should the new folder be called?",
        supply=f"Call it '{name}'.",
    )


@intent(DOMAIN, level=1, missing=True)
def write_new_file(rng: np.random.Generator, scene: Scene) -> Intent | None:
    name = _new_name(rng, _here(scene), _file_name)
    if name is None:
        return None
    content = sentence(rng)
    scene.run("write_file", file_name=name, content=content)
    return Intent(
        choice(
            rng,
            (
                f"Create a file named '{name}' containing exactly: {content}",
                f"Write the text '{content}' into a new file called '{name}'.",
            ),
        ),
        answer=f"I wrote your text to '{name}'.",
        vague=f"Write the text '{content}' into a new file, please.",
        ask="What should the new file be named?",
        supply=f"Name it '{name}'.",
    )


@intent(DOMAIN, level=1)
def move_into_directory(rng: np.random.Generator, scene: Scene) -> Intent | None:
    files, dirs = _files(scene), _dirs(scene)
    candidates = [(f, d) for f in files for d in dirs if f not in _here(scene)[d]]
    if not candidates:
        return None
    file_name, directory = choice(rng, candidates)
    scene.run("mv", source=file_name, destination=directory)
    return Intent(
        f"Move '{file_name}' into the '{directory}' folder.",
        answer=f"'{file_name}' is now in '{directory}'.",
    )


@intent(DOMAIN, level=1, missing=True)
def rename_file(rng: np.random.Generator, scene: Scene) -> Intent | None:
    files = _files(scene)
    new = _new_name(rng, _here(scene), _file_name)
    if not files or new is None:
        return None
    old = choice(rng, files)
    scene.run("mv", source=old, destination=new)
    return Intent(
        f"Rename the file '{old}' to '{new}'.",
        answer=f"Renamed '{old}' to '{new}'.",
        vague=f"Please rename the file '{old}'.",
        ask=f"What should the new name of '{old}' be?",
        supply=f"Rename it to '{new}'.",
    )


@intent(DOMAIN, level=1)
def read_file(rng: np.random.Generator, scene: Scene) -> Intent | None:
    files = _files(scene)
    if not files:
        return None
    name = choice(rng, files)
    content = scene.run("cat", file_name=name)["file_content"]
    first = content.splitlines()[0] if content else "(empty)"
    return Intent(
        choice(rng, (f"Show me what's in '{name}'.", f"What does the file '{name}' say?")),
        answer=f"'{name}' starts with: {first}",
    )


@intent(DOMAIN, level=1)
def count_in_file(rng: np.random.Generator, scene: Scene) -> Intent | None:
    files = _files(scene)
    if not files:
        return None
    name = choice(rng, files)
    mode = choice(rng, ("lines", "words", "chars"))
    label = {"lines": "lines", "words": "words", "chars": "characters"}[mode]
    count = scene.run("wc", file_name=name, mode=mode)["count"]
    return Intent(f"How many {label} are in '{name}'?", answer=f"'{name}' has {count} {label}.")


@intent(DOMAIN, level=1)
def search_file(rng: np.random.Generator, scene: Scene) -> Intent | None:
    files = [f for f in _files(scene) if _here(scene)[f]]
    if not files:
        return None
    name = choice(rng, files)
    words = [w for w in _here(scene)[name].split() if w.isalpha()]
    if not words:
        return None
    word = choice(rng, words)
    lines = scene.run("grep", file_name=name, pattern=word)["matching_lines"]
    return Intent(
        f"Which lines of '{name}' contain the word '{word}'?",
        answer=f"{len(lines)} line(s) of '{name}' contain '{word}': " + " | ".join(lines),
    )


@intent(DOMAIN, level=1)
def list_directory(rng: np.random.Generator, scene: Scene) -> Intent | None:
    entries = scene.run("ls")["current_directory_content"]
    return Intent(
        choice(rng, ("What's in the current folder?", "List the contents of this directory.")),
        answer="This folder contains: " + ", ".join(entries) if entries else "It is empty.",
    )


@intent(DOMAIN, level=1)
def delete_file(rng: np.random.Generator, scene: Scene) -> Intent | None:
    files = _files(scene)
    if not files:
        return None
    name = choice(rng, files)
    scene.run("rm", name=name)
    return Intent(f"Delete the file '{name}'.", answer=f"'{name}' is deleted.")


@intent(DOMAIN, level=2, missing=True)
def backup_file(rng: np.random.Generator, scene: Scene) -> Intent | None:
    files = _files(scene)
    folder = _new_name(rng, _here(scene), lambda r: choice(r, ("backup", "copies", "saved")))
    if not files or folder is None:
        return None
    name = choice(rng, files)
    scene.run("mkdir", dir_name=folder)
    scene.run("cp", source=name, destination=folder)
    return Intent(
        f"Make a new folder '{folder}' and copy '{name}' into it.",
        answer=f"Created '{folder}' with a copy of '{name}'.",
        vague=f"Make a new folder '{folder}' and copy one of my files into it.",
        ask="Which file should I copy into it?",
        supply=f"The file '{name}'.",
    )


@intent(DOMAIN, level=2, missing=True)
def write_in_subfolder(rng: np.random.Generator, scene: Scene) -> Intent | None:
    dirs = _dirs(scene)
    if not dirs:
        return None
    folder = choice(rng, dirs)
    taken = _here(scene)[folder]
    name = _new_name(rng, taken, _file_name)
    if name is None:
        return None
    content = sentence(rng)
    scene.run("cd", folder=folder)
    scene.run("write_file", file_name=name, content=content)
    return Intent(
        f"Go into the '{folder}' folder and create a file '{name}' with the text: {content}",
        answer=f"In '{folder}', I created '{name}'.",
        vague=f"Go into the '{folder}' folder and create a file with the text: {content}",
        ask="What should I name the file?",
        supply=f"Name it '{name}'.",
    )


@intent(DOMAIN, level=3)
def append_and_check(rng: np.random.Generator, scene: Scene) -> Intent | None:
    dirs = [d for d in _dirs(scene) if any(isinstance(v, str) for v in _here(scene)[d].values())]
    if not dirs:
        return None
    folder = choice(rng, dirs)
    name = choice(rng, sorted(k for k, v in _here(scene)[folder].items() if isinstance(v, str)))
    line = f"{choice(rng, WORDS)} done {int(rng.integers(1, 100))}"
    scene.run("cd", folder=folder)
    scene.run("write_file", file_name=name, content=line, append=True)
    last = scene.run("tail", file_name=name, lines=2)["last_lines"]
    return Intent(
        f"In the '{folder}' folder, append a new line '{line}' to '{name}' and then show me "
        "its last 2 lines.",
        answer=f"Appended. The last lines of '{name}' are now: {last}",
    )


@intent(DOMAIN, level=2)
def go_up_and_list(rng: np.random.Generator, scene: Scene) -> Intent | None:
    if not scene[DOMAIN].cwd:
        return None
    scene.run("cd", folder="..")
    entries = scene.run("ls")["current_directory_content"]
    return Intent(
        "Go back up to the parent folder and tell me what's there.",
        answer="The parent folder contains: " + ", ".join(entries),
    )


@intent(DOMAIN, level=2)
def find_by_name(rng: np.random.Generator, scene: Scene) -> Intent | None:
    stem = choice(rng, FILE_STEMS)
    matches = scene.run("find", name=stem)["matches"]
    return Intent(
        f"Find every file or folder under the current directory whose name contains '{stem}'.",
        answer=f"I found {len(matches)} match(es): " + ", ".join(matches)
        if matches
        else f"Nothing here has '{stem}' in its name.",
    )
