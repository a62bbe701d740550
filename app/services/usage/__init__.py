"""Usage analytics: daily rollups kept exact by the charging transaction (`rollups.py`), the queries every
usage page, the API and `flask usage report` read (`report.py`), and the check that rebuilds the rollups
from the ledger (`reconcile.py`).

Nothing is imported here: `credits/ledger.py` imports `rollups` while the credits package is still
loading, and `reconcile` imports the credits package.
"""
