"""CodeExec-v0: multi-turn code repair against hidden tests in a real sandbox."""
