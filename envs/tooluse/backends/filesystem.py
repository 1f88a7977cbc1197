"""A small in-memory file system with a current directory (names, not paths).

State: ``tree`` (the root directory: a dict mapping names to file contents, strings, or to
sub-directories, dicts) and ``cwd`` (the path from the root to the current directory, as a
list of names). Like BFCL's file system, every tool takes plain names relative to the
current directory; paths with ``/`` are rejected.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from agentgym.core.tools import tool
from agentgym.envs.tooluse.backends.base import Backend

__all__ = ["FileSystem"]

Node = dict[str, Any]


class FileSystem(Backend):
    """A file system rooted at ``/workspace``; tools act on the current directory."""

    domain = "filesystem"

    def load(self, config: dict[str, Any]) -> None:
        self.tree: Node = config.get("tree", {})
        self.cwd: list[str] = list(config.get("cwd", []))

    # ---------------------------------------------------------------- helpers --

    def _dir(self) -> Node:
        node = self.tree
        for name in self.cwd:
            node = node[name]
        return node

    def _name(self, tool_name: str, name: str) -> str:
        cleaned = name.strip()
        if cleaned.endswith("/") and cleaned.count("/") == 1 and len(cleaned) > 1:
            cleaned = cleaned[:-1]
        if not cleaned or "/" in cleaned or cleaned in (".", ".."):
            raise self.fail("path_not_allowed", f"{tool_name}: {name}: Invalid argument")
        return cleaned

    def _file(self, tool_name: str, name: str) -> tuple[str, str]:
        name = self._name(tool_name, name)
        node = self._dir().get(name)
        if node is None:
            raise self.fail("not_found", f"{tool_name}: {name}: No such file or directory")
        if isinstance(node, dict):
            raise self.fail("is_a_directory", f"{tool_name}: {name}: Is a directory")
        return name, node

    # ---------------------------------------------------------------- tools --

    @tool
    def pwd(self) -> dict[str, str]:
        """Show the path of the current directory."""
        return {"current_working_directory": "/" + "/".join(["workspace", *self.cwd])}

    @tool
    def ls(self, show_hidden: bool = False) -> dict[str, list[str]]:
        """List the current directory; directory names end with '/'.

        Args:
            show_hidden: Also list names that start with '.'.
        """
        entries = [
            f"{name}/" if isinstance(node, dict) else name
            for name, node in sorted(self._dir().items())
            if show_hidden or not name.startswith(".")
        ]
        return {"current_directory_content": entries}

    @tool
    def cd(self, folder: str) -> dict[str, str]:
        """Change the current directory to a sub-directory, or to the parent with '..'.

        Args:
            folder: Name of a directory in the current directory, or '..'.
        """
        if folder.strip() == "..":
            if not self.cwd:
                raise self.fail("at_root", "cd: ..: Permission denied")
            self.cwd.pop()
        else:
            name = self._name("cd", folder)
            node = self._dir().get(name)
            if not isinstance(node, dict):
                raise self.fail("not_found", f"cd: {name}: No such directory")
            self.cwd.append(name)
        return {"current_working_directory": (self.cwd or ["workspace"])[-1]}

    @tool
    def mkdir(self, dir_name: str) -> str:
        """Create a directory in the current directory.

        Args:
            dir_name: Name of the new directory.
        """
        name = self._name("mkdir", dir_name)
        here = self._dir()
        if name in here:
            raise self.fail("exists", f"mkdir: cannot create directory '{name}': File exists")
        here[name] = {}
        return f"Created directory {name}."

    @tool
    def touch(self, file_name: str) -> str:
        """Create an empty file in the current directory.

        Args:
            file_name: Name of the new file.
        """
        name = self._name("touch", file_name)
        here = self._dir()
        if name in here:
            raise self.fail("exists", f"touch: cannot create '{name}': File exists")
        here[name] = ""
        return f"Created file {name}."

    @tool
    def write_file(self, file_name: str, content: str, append: bool = False) -> str:
        """Write text to a file in the current directory (created if it does not exist).

        Args:
            file_name: Name of the file.
            content: The text to write.
            append: Add the text as a new last line instead of replacing the content.
        """
        name = self._name("write_file", file_name)
        here = self._dir()
        if isinstance(here.get(name), dict):
            raise self.fail("is_a_directory", f"write_file: {name}: Is a directory")
        previous = here.get(name, "")
        if append and previous:
            content = f"{previous}\n{content}"
        here[name] = content
        return f"Wrote {len(here[name])} characters to {name}."

    @tool
    def cat(self, file_name: str) -> dict[str, str]:
        """Show the content of a file in the current directory.

        Args:
            file_name: Name of the file.
        """
        _, content = self._file("cat", file_name)
        return {"file_content": content}

    @tool
    def tail(self, file_name: str, lines: int = 5) -> dict[str, str]:
        """Show the last lines of a file in the current directory.

        Args:
            file_name: Name of the file.
            lines: How many lines to show (at least 1).
        """
        if lines < 1:
            raise self.fail("bad_count", "tail: invalid number of lines")
        _, content = self._file("tail", file_name)
        return {"last_lines": "\n".join(content.splitlines()[-lines:])}

    @tool
    def rm(self, name: str) -> str:
        """Remove a file or an empty directory from the current directory.

        Args:
            name: Name of the file or directory.
        """
        cleaned = self._name("rm", name)
        here = self._dir()
        node = here.get(cleaned)
        if node is None:
            raise self.fail("not_found", f"rm: cannot remove '{cleaned}': No such file")
        if isinstance(node, dict) and node:
            raise self.fail("dir_not_empty", f"rm: cannot remove '{cleaned}': Directory not empty")
        del here[cleaned]
        return f"Removed {cleaned}."

    @tool
    def mv(self, source: str, destination: str) -> str:
        """Move a file or directory into a sub-directory, or rename it.

        Args:
            source: Name of the file or directory to move.
            destination: An existing directory to move it into, or the new name.
        """
        src = self._name("mv", source)
        dst = self._name("mv", destination)
        here = self._dir()
        if src not in here:
            raise self.fail("not_found", f"mv: cannot stat '{src}': No such file or directory")
        target = here.get(dst)
        if isinstance(target, dict) and dst != src:
            if src in target:
                raise self.fail("exists", f"mv: cannot move '{src}': Destination exists")
            target[src] = here.pop(src)
            return f"Moved {src} into {dst}."
        if target is not None:
            raise self.fail("exists", f"mv: cannot move '{src}': Destination exists")
        here[dst] = here.pop(src)
        return f"Renamed {src} to {dst}."

    @tool
    def cp(self, source: str, destination: str) -> str:
        """Copy a file into a sub-directory, or to a new name.

        Args:
            source: Name of the file to copy.
            destination: An existing directory to copy it into, or the new file's name.
        """
        src, content = self._file("cp", source)
        dst = self._name("cp", destination)
        here = self._dir()
        target = here.get(dst)
        if isinstance(target, dict):
            if src in target:
                raise self.fail("exists", f"cp: cannot copy '{src}': Destination exists")
            target[src] = content
            return f"Copied {src} into {dst}."
        if target is not None:
            raise self.fail("exists", f"cp: cannot copy '{src}': Destination exists")
        here[dst] = content
        return f"Copied {src} to {dst}."

    @tool
    def grep(self, file_name: str, pattern: str) -> dict[str, list[str]]:
        """Lines of a file that contain a text (case-sensitive).

        Args:
            file_name: Name of the file.
            pattern: The text to look for.
        """
        _, content = self._file("grep", file_name)
        return {"matching_lines": [line for line in content.splitlines() if pattern in line]}

    @tool
    def wc(self, file_name: str, mode: Literal["lines", "words", "chars"] = "lines") -> dict:
        """Count the lines, words or characters of a file.

        Args:
            file_name: Name of the file.
            mode: What to count.
        """
        _, content = self._file("wc", file_name)
        if mode == "lines":
            count = len(content.splitlines())
        elif mode == "words":
            count = len(re.findall(r"\S+", content))
        else:
            count = len(content)
        return {"count": count, "type": mode}

    @tool
    def find(self, name: str = "") -> dict[str, list[str]]:
        """Find files and directories under the current directory whose name contains a text.

        Args:
            name: The text to look for in names (empty: everything).
        """
        matches: list[str] = []

        def walk(node: Node, prefix: str) -> None:
            for child, value in sorted(node.items()):
                path = f"{prefix}/{child}" if prefix else child
                if name in child:
                    matches.append(path)
                if isinstance(value, dict):
                    walk(value, path)

        walk(self._dir(), "")
        return {"matches": matches}
