"""A messaging service: a user directory, contacts, an inbox and sent messages.

State: ``user_id`` (who is logged in), ``directory`` (every user: name -> user id),
``contacts`` (names of the user's contacts), ``inbox`` and ``sent`` (messages with ids)
and ``next_message_id``. Messages are addressed by user id, not by name.
"""

from __future__ import annotations

from typing import Any

from agentgym.core.tools import tool
from agentgym.envs.tooluse.backends.base import Backend

__all__ = ["MessagingService"]


class MessagingService(Backend):
    """Send, read, search and delete messages; manage contacts."""

    domain = "messaging"

    def load(self, config: dict[str, Any]) -> None:
        self.user_id: str = str(config.get("user_id", "USR000"))
        self.directory: dict[str, str] = dict(config.get("directory", {}))
        self.contacts: list[str] = list(config.get("contacts", []))
        self.inbox: list[dict[str, Any]] = list(config.get("inbox", []))
        self.sent: list[dict[str, Any]] = list(config.get("sent", []))
        self.next_message_id: int = int(config.get("next_message_id", 1))

    def _known_ids(self) -> set[str]:
        return set(self.directory.values())

    @tool
    def list_contacts(self) -> dict[str, dict[str, str]]:
        """The user's contacts with their user ids."""
        return {"contacts": {name: self.directory[name] for name in self.contacts}}

    @tool
    def get_user_id(self, name: str) -> dict[str, str]:
        """Look up the user id of a person by their full name.

        Args:
            name: The person's full name, e.g. 'Ada Lovelace'.
        """
        for known, user_id in self.directory.items():
            if known.casefold() == name.strip().casefold():
                return {"user_id": user_id}
        raise self.fail("unknown_user", "get_user_id: User not found")

    @tool
    def add_contact(self, name: str) -> dict[str, Any]:
        """Add a person from the directory to the user's contacts.

        Args:
            name: The person's full name.
        """
        match = next((k for k in self.directory if k.casefold() == name.strip().casefold()), None)
        if match is None:
            raise self.fail("unknown_user", "add_contact: User not found")
        if match in self.contacts:
            raise self.fail("exists", "add_contact: Contact already exists")
        self.contacts.append(match)
        return {"added": match, "user_id": self.directory[match]}

    @tool
    def send_message(self, receiver_id: str, text: str) -> dict[str, Any]:
        """Send a message to another user.

        Args:
            receiver_id: The receiver's user id, e.g. 'USR042'.
            text: The message.
        """
        if receiver_id not in self._known_ids() or receiver_id == self.user_id:
            raise self.fail("unknown_receiver", "send_message: Receiver not found")
        if not text.strip():
            raise self.fail("empty_message", "send_message: Invalid message")
        message = {"message_id": self.next_message_id, "to": receiver_id, "text": text}
        self.next_message_id += 1
        self.sent.append(message)
        return {"sent_status": True, "message_id": message["message_id"]}

    @tool
    def view_inbox(self, sender_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Messages the user received, optionally only those from one sender.

        Args:
            sender_id: Only messages from this user id.
        """
        if sender_id is not None and sender_id not in self._known_ids():
            raise self.fail("unknown_sender", "view_inbox: Sender not found")
        return {"messages": [m for m in self.inbox if sender_id in (None, m["from"])]}

    @tool
    def view_sent_messages(self) -> dict[str, list[dict[str, Any]]]:
        """Messages the user sent."""
        return {"messages": list(self.sent)}

    @tool
    def search_messages(self, keyword: str) -> dict[str, list[dict[str, Any]]]:
        """Received and sent messages that contain a keyword (case-insensitive).

        Args:
            keyword: The text to look for.
        """
        text = keyword.strip().casefold()
        if not text:
            raise self.fail("empty_query", "search_messages: Invalid keyword")
        found = [m for m in self.inbox + self.sent if text in m["text"].casefold()]
        return {"results": found}

    @tool
    def delete_message(self, message_id: int) -> dict[str, Any]:
        """Delete a received or sent message.

        Args:
            message_id: The message's id.
        """
        for box in (self.inbox, self.sent):
            for index, message in enumerate(box):
                if message["message_id"] == message_id:
                    del box[index]
                    return {"deleted_status": True, "message_id": message_id}
        raise self.fail("unknown_message", "delete_message: Message not found")
