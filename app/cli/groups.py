"""The command groups of the contract's CLI; each domain module adds its commands to its group."""

from __future__ import annotations

from flask.cli import AppGroup

users = AppGroup("users", help="List and manage accounts.")
credits = AppGroup("credits", help="Grant, inspect and reconcile credits.")
tokens = AppGroup("tokens", help="Personal API tokens.")
keys = AppGroup("keys", help="Encryption keys for stored secrets.")
billing = AppGroup("billing", help="Stripe customers and events.")
jobs = AppGroup("jobs", help="The background worker and the periodic sweeps.")
workspaces = AppGroup("workspaces", help="Personal and team workspaces.")
usage = AppGroup("usage", help="Usage reports for operators.")

ALL = (users, credits, tokens, keys, billing, jobs, workspaces, usage)
