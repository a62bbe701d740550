"""Local emulators of the OpenAI, GitHub and Stripe HTTP APIs.

Each emulator is an aiohttp application speaking the provider's wire format, so the product's real
SDKs (openai, github3.py + Authlib, stripe) can be pointed at them through their base-URL settings.
See ``server.py`` to run them (in a test or with ``python -m sandbox.emulators``) and ``control.py``
for the client of the ``/_emulator/`` control endpoints.
"""

from sandbox.emulators.github_emulator import GitHubEmulator
from sandbox.emulators.openai_emulator import OpenAIEmulator
from sandbox.emulators.server import EmulatorServer
from sandbox.emulators.stripe_emulator import StripeEmulator

__all__ = ["EmulatorServer", "GitHubEmulator", "OpenAIEmulator", "StripeEmulator"]
