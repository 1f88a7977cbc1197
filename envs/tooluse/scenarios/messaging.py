"""Messaging tasks: a user directory, contacts, an inbox, and user requests."""

from __future__ import annotations

from typing import Any

import numpy as np

from agentgym.envs.tooluse.scenarios.common import (
    WORDS,
    Intent,
    Scene,
    choice,
    intent,
    person,
    sample,
    sentence,
)

DOMAIN = "messaging"


def random_config(rng: np.random.Generator, long_context: bool) -> dict[str, Any]:
    """8-14 users, a few contacts and messages (long: hundreds of inbox messages)."""
    names: list[str] = []
    while len(names) < int(rng.integers(8, 15)):
        name = person(rng)
        if name not in names:
            names.append(name)
    numbers = sample(rng, range(100, 1000), len(names) + 1)
    directory = {name: f"USR{number}" for name, number in zip(names, numbers[1:], strict=True)}
    me = f"USR{numbers[0]}"
    others = list(directory.values())
    next_id = int(rng.integers(1, 500))
    inbox = []
    for _ in range(int(rng.integers(2, 7)) + (int(rng.integers(150, 250)) if long_context else 0)):
        inbox.append({"message_id": next_id, "from": choice(rng, others), "text": sentence(rng)})
        next_id += 1
    sent = []
    for _ in range(int(rng.integers(0, 4))):
        sent.append({"message_id": next_id, "to": choice(rng, others), "text": sentence(rng)})
        next_id += 1
    return {
        "user_id": me,
        "directory": directory,
        "contacts": sample(rng, names, int(rng.integers(1, 5))),
        "inbox": inbox,
        "sent": sent,
        "next_message_id": next_id,
    }


def _service(scene: Scene) -> Any:
    return scene[DOMAIN]


@intent(DOMAIN, level=2, missing=True)
def message_person(rng: np.random.Generator, scene: Scene) -> Intent | None:
    service = _service(scene)
    name = choice(rng, sorted(service.directory))
    text = sentence(rng)
    user_id = scene.run("get_user_id", name=name)["user_id"]
    scene.run("send_message", receiver_id=user_id, text=text)
    if rng.random() < 0.5:
        vague = f"Send {name} a message for me."
        ask = f"What should the message to {name} say?"
        supply = f"Write: {text}"
    else:
        vague = f"Send this message to my colleague: {text}"
        ask = "Who should I send it to?"
        supply = f"To {name}."
    return Intent(
        f"Send {name} a message saying: {text}",
        answer=f"Your message to {name} ({user_id}) is sent.",
        vague=vague,
        ask=ask,
        supply=supply,
    )


@intent(DOMAIN, level=1)
def show_contacts(rng: np.random.Generator, scene: Scene) -> Intent | None:
    contacts = scene.run("list_contacts")["contacts"]
    return Intent(
        choice(rng, ("Who is in my contact list?", "List my contacts, please.")),
        answer="Your contacts: " + ", ".join(contacts),
    )


@intent(DOMAIN, level=1, missing=True)
def add_to_contacts(rng: np.random.Generator, scene: Scene) -> Intent | None:
    service = _service(scene)
    options = [n for n in service.directory if n not in service.contacts]
    if not options:
        return None
    name = choice(rng, sorted(options))
    scene.run("add_contact", name=name)
    return Intent(
        f"Add {name} to my contacts.",
        answer=f"{name} is now in your contacts.",
        vague="Add someone from the directory to my contacts.",
        ask="Whom should I add?",
        supply=f"{name}.",
    )


@intent(DOMAIN, level=2)
def messages_from(rng: np.random.Generator, scene: Scene) -> Intent | None:
    service = _service(scene)
    senders = {m["from"] for m in service.inbox}
    names = sorted(n for n, uid in service.directory.items() if uid in senders)
    if not names:
        return None
    name = choice(rng, names)
    user_id = scene.run("get_user_id", name=name)["user_id"]
    found = scene.run("view_inbox", sender_id=user_id)["messages"]
    return Intent(
        f"Show me the messages {name} sent me.",
        answer=f"{name} sent you {len(found)} message(s).",
    )


@intent(DOMAIN, level=1)
def search_keyword(rng: np.random.Generator, scene: Scene) -> Intent | None:
    word = choice(rng, WORDS)
    found = scene.run("search_messages", keyword=word)["results"]
    return Intent(
        f"Find my messages that mention '{word}'.",
        answer=f"{len(found)} message(s) mention '{word}'.",
    )


@intent(DOMAIN, level=2)
def delete_by_keyword(rng: np.random.Generator, scene: Scene) -> Intent | None:
    service = _service(scene)
    everything = service.inbox + service.sent
    words = sorted({w for m in everything for w in WORDS if w in m["text"].casefold()})
    unique = [w for w in words if sum(w in m["text"].casefold() for m in everything) == 1]
    if not unique:
        return None
    word = choice(rng, unique)
    message = next(m for m in everything if word in m["text"].casefold())
    scene.run("search_messages", keyword=word)
    scene.run("delete_message", message_id=message["message_id"])
    return Intent(
        f"Search my messages for '{word}' and delete the message you find.",
        answer=f"Deleted message {message['message_id']}.",
    )


@intent(DOMAIN, level=1, missing=True)
def delete_by_id(rng: np.random.Generator, scene: Scene) -> Intent | None:
    service = _service(scene)
    messages = service.inbox + service.sent
    if not messages:
        return None
    message_id = choice(rng, messages)["message_id"]
    scene.run("delete_message", message_id=message_id)
    return Intent(
        f"Delete message number {message_id}.",
        answer=f"Message {message_id} is deleted.",
        vague="Delete one of my messages, please.",
        ask="Which message? Please give me its id.",
        supply=f"Message {message_id}.",
    )


@intent(DOMAIN, level=1)
def sent_messages(rng: np.random.Generator, scene: Scene) -> Intent | None:
    found = scene.run("view_sent_messages")["messages"]
    return Intent("What messages have I sent?", answer=f"You have sent {len(found)} message(s).")
