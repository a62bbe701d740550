"""All models, imported here so Alembic and the app see the whole schema."""

from app.models.base import Base
from app.models.billing import BillingCustomer, StripeEvent, Subscription
from app.models.chat import ChatMessage
from app.models.credits import CreditBalance, CreditHold, LedgerEntry
from app.models.projects import Blob, Project, ProjectBlob, Snapshot, SnapshotTree
from app.models.publish import ProjectSync, Push
from app.models.usage import UsageDaily
from app.models.users import ApiToken, GithubAccount, User, UserSession
from app.models.workspaces import Workspace, WorkspaceMember

__all__ = [
    "ApiToken",
    "Base",
    "BillingCustomer",
    "Blob",
    "ChatMessage",
    "CreditBalance",
    "CreditHold",
    "GithubAccount",
    "LedgerEntry",
    "Project",
    "ProjectBlob",
    "ProjectSync",
    "Push",
    "Snapshot",
    "SnapshotTree",
    "StripeEvent",
    "Subscription",
    "UsageDaily",
    "User",
    "UserSession",
    "Workspace",
    "WorkspaceMember",
]
