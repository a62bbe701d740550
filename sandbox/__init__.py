"""The sandbox: provider emulators and the launcher. Never imported by app/."""
