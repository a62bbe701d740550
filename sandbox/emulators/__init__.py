"""Provider emulators."""
