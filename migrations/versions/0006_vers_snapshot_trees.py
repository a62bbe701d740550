"""Versions as trees of directory manifests shared between versions; `snapshot_files` goes

Expand (`snapshot_trees`, `project_blobs`, `snapshots.root_tree` and `snapshots.origins`) → backfill
(each version's file rows become its tree, written once per distinct directory of the project; each
project's distinct blobs become its `project_blobs`; each file's origin is kept in `origins`) → contract
(`snapshot_files` dropped). The way down rebuilds `snapshot_files` from the trees, origins included.

The manifest format is frozen here (a copy of `app/services/snapshots/trees.py::build_trees` as of this
revision), so a later change to the app cannot change what this migration writes.

Revision ID: 0006_vers
Revises: 0005_teams
Create Date: 2026-12-08

"""
import hashlib
import json

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0006_vers'
down_revision = '0005_teams'
branch_labels = None
depends_on = None

KEEP_IDS = {'sqlite_autoincrement': True}
CARRIED = 'carried'
MYSQL_OPTIONS = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_bin', mysql_engine='InnoDB')
LONGBLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), 'mysql', 'mariadb')


def upgrade():
    op.create_table('snapshot_trees',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('manifest', LONGBLOB, nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_snapshot_trees_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshot_trees')),
    **MYSQL_OPTIONS
    )
    with op.batch_alter_table('snapshot_trees', schema=None) as batch_op:
        batch_op.create_index('uq_snapshot_trees_project_id_hash', ['project_id', 'hash'], unique=True)
    op.create_table('project_blobs',
    sa.Column('project_id', sa.BigInteger(), nullable=False),
    sa.Column('blob_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['blob_id'], ['blobs.id'], name=op.f('fk_project_blobs_blob_id_blobs')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_blobs_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'blob_id', name=op.f('pk_project_blobs')),
    **MYSQL_OPTIONS
    )
    with op.batch_alter_table('project_blobs', schema=None) as batch_op:
        batch_op.create_index('ix_project_blobs_blob_id', ['blob_id'], unique=False)
    with op.batch_alter_table('snapshots', schema=None, table_kwargs=KEEP_IDS) as batch_op:
        batch_op.add_column(sa.Column('root_tree', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('origins', sa.JSON(), nullable=True))

    _backfill_trees()
    op.drop_table('snapshot_files')


def _serialize(entries):
    return json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _build_trees(files):
    """(root hash, manifest bytes by hash) of `path -> blob id`: the format of revision 0006."""
    root = {}
    for path, blob_id in files.items():
        *folders, name = path.split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder + "/", {})
        node[name] = blob_id
    if not root:
        return None, {}
    manifests = {}

    def store(entries):
        data = _serialize(entries)
        digest = hashlib.sha256(data).hexdigest()
        manifests[digest] = data
        return digest

    def entries_of(node):
        entries = {}
        for key, value in node.items():
            if not isinstance(value, dict):
                entries[key] = value
                continue
            child = entries_of(value)
            if len(child) == 1:
                (name, ref), = child.items()
                entries[key + name] = ref
            else:
                entries[key] = store(child)
        return entries

    entries = entries_of(root)
    while len(entries) == 1 and isinstance(next(iter(entries.values())), str):
        key, ref = next(iter(entries.items()))
        entries = {key + name: child for name, child in json.loads(manifests.pop(ref)).items()}
    return store(entries), manifests


def _origins(rows):
    kinds = {origin for _, _, origin in rows}
    if len(kinds) == 1 and CARRIED not in kinds:
        return {"": kinds.pop()}
    return {path: origin for path, _, origin in rows if origin != CARRIED}


def _backfill_trees():
    """Idempotent per version (only versions without a root tree are read); one project at a time."""
    bind = op.get_bind()
    bind.execute(sa.text(
        "INSERT INTO project_blobs (project_id, blob_id) SELECT DISTINCT s.project_id, f.blob_id "
        "FROM snapshot_files f JOIN snapshots s ON s.id = f.snapshot_id"))
    snapshots = bind.execute(sa.text(
        "SELECT id, project_id FROM snapshots WHERE root_tree IS NULL ORDER BY project_id, id")).all()
    stored = {}
    for snapshot_id, project_id in snapshots:
        rows = bind.execute(sa.text(
            "SELECT path, blob_id, origin FROM snapshot_files WHERE snapshot_id = :s"), {"s": snapshot_id}).all()
        root, manifests = _build_trees({path: blob_id for path, blob_id, _ in rows})
        known = stored.setdefault(project_id, set(bind.execute(sa.text(
            "SELECT hash FROM snapshot_trees WHERE project_id = :p"), {"p": project_id}).scalars()))
        new = [{"p": project_id, "h": d, "m": data} for d, data in manifests.items() if d not in known]
        if new:
            bind.execute(sa.text("INSERT INTO snapshot_trees (project_id, hash, manifest) VALUES (:p, :h, :m)"), new)
            known.update(item["h"] for item in new)
        bind.execute(sa.text("UPDATE snapshots SET root_tree = :r, origins = :o WHERE id = :s"),
                     {"r": root, "o": json.dumps(_origins(rows)), "s": snapshot_id})


def _flatten(root, manifests):
    files, pending = {}, [("", root)]
    while pending:
        prefix, digest = pending.pop()
        for key, ref in json.loads(bytes(manifests[digest])).items():
            if isinstance(ref, str):
                pending.append((prefix + key, ref))
            else:
                files[prefix + key] = ref
    return files


def _restore_file_rows():
    bind = op.get_bind()
    snapshots = bind.execute(sa.text(
        "SELECT id, project_id, root_tree, origins FROM snapshots WHERE root_tree IS NOT NULL "
        "ORDER BY project_id, id")).all()
    trees = {}
    for snapshot_id, project_id, root, origins in snapshots:
        if project_id not in trees:
            trees = {project_id: dict(bind.execute(sa.text(
                "SELECT hash, manifest FROM snapshot_trees WHERE project_id = :p"), {"p": project_id}).all())}
        origins = json.loads(origins) if isinstance(origins, str) else (origins or {})
        files = _flatten(root, trees[project_id])
        bind.execute(sa.text(
            "INSERT INTO snapshot_files (snapshot_id, path, blob_id, origin) VALUES (:s, :p, :b, :o)"),
            [{"s": snapshot_id, "p": path, "b": blob_id, "o": origins.get(path) or origins.get("", CARRIED)}
             for path, blob_id in sorted(files.items())])


def downgrade():
    op.create_table('snapshot_files',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('snapshot_id', sa.BigInteger(), nullable=False),
    sa.Column('path', sa.String(length=1024), nullable=False),
    sa.Column('blob_id', sa.BigInteger(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['blob_id'], ['blobs.id'], name=op.f('fk_snapshot_files_blob_id_blobs')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['snapshots.id'], name=op.f('fk_snapshot_files_snapshot_id_snapshots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_snapshot_files')),
    **MYSQL_OPTIONS
    )
    with op.batch_alter_table('snapshot_files', schema=None) as batch_op:
        batch_op.create_index('ix_snapshot_files_blob_id', ['blob_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_snapshot_files_snapshot_id'), ['snapshot_id'], unique=False)
    _restore_file_rows()
    with op.batch_alter_table('snapshots', schema=None, table_kwargs=KEEP_IDS) as batch_op:
        batch_op.drop_column('origins')
        batch_op.drop_column('root_tree')
    op.drop_table('project_blobs')
    op.drop_table('snapshot_trees')
