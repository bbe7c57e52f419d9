"""What each kind of path holds, as a JSON-ready dict (docs/operations.md, "Node formats").

Every reader takes the children already read (nodes.children) and reads only what it needs more.
"""

from __future__ import annotations

from zkherd.common import paths
from zkherd.recipes.election import MEMBER
from zkherd.recipes.lock import QUEUE, RUN
from zkherd.recipes.sequential import in_order, is_sequence
from zkherd.recipes.tickmark import parse as parse_marker
from zkherd.run.failedversion import recorded_version
from zkherd.status import safe
from zkherd.status.nodes import children, node

FAILED = "failed"
TICKS = "ticks"
RECENT_TICKS = 3  # markers shown per cron job
PHASES = ("applying", "paused")  # what a rolling-lock holder says it does (run/rollout.py)


MAX_SLOTS = 1 << 20


def who(node_):
    """id, host, pid of a lock or rolling lock node (JSON since zkherd 16; the bare id before), each
    of its type or None (any writer may put anything there)."""
    doc = node_.json_object()
    if doc is None:
        return {"id": node_.text(), "host": None, "pid": None, "slots": None, "kind": None}
    return {"id": safe.string(doc.get("id")), "host": safe.string(doc.get("host")),
            "pid": safe.integer(doc.get("pid"), 1), "slots": safe.integer(doc.get("slots"), 1, MAX_SLOTS),
            "kind": safe.string(doc.get("kind"))}


def _contender_key(name, stat):
    """Pairs a lock- node with its run- node: the same session and attempt token."""
    token = name[name.index("-") + 1:-10].rstrip("-")
    return stat.ephemeralOwner, token


def read_lock(client, path, found, wait):
    line = [found[n] for n in in_order(found, QUEUE)]
    runs = [found[n] for n in in_order(found, RUN)]
    foreign = [n.name for n in line + runs if not n.ephemeral]  # no runner holds them (recipes/foreign.py)
    line = [n for n in line if n.ephemeral]
    runs = [n for n in runs if n.ephemeral]
    described = [who(n) for n in line + runs]
    slots = _slots(line + runs, described)
    rolling = FAILED in found or any(d["kind"] == "rolling" for d in described)
    run_of = {_contender_key(n.name, n.stat): (i, n) for i, n in enumerate(runs)}
    contenders, paired = [], set()
    for place, queued in enumerate(line):
        key = _contender_key(queued.name, queued.stat)
        run_place, run = run_of.get(key, (None, None))
        paired.add(key)
        limit = 1 if slots is None else slots  # unknown: only the first surely holds
        holding = place < limit and run_place is not None and run_place < limit
        contenders.append(_contender(queued, run, "holder" if holding else "waiting", place))
    for key, (_place, run) in run_of.items():
        if key not in paired:  # its lock- node went: the runner stops its child, then deletes this one
            contenders.append(_contender(run, run, "stopping", None))
    result = {"kind": "rolling-lock" if rolling else "lock", "slots": slots,
              "holders": [c for c in contenders if c["state"] == "holder"],
              "stopping": [c for c in contenders if c["state"] == "stopping"],
              "waiting": [c for c in contenders if c["state"] == "waiting"],
              "foreign_nodes": foreign[:safe.LISTED], "foreign_count": len(foreign)}
    if rolling:
        result.update(_rollout(found.get(FAILED), result["holders"]))
    return result


def _slots(nodes, described):
    """The slots the newest node that says so states; None (unknown) if none does and a runner older
    than zkherd 16 (a bare id, no "slots") is in line; 1 for an empty line."""
    stated = [(n.stat.czxid, d["slots"]) for n, d in zip(nodes, described) if d["slots"] is not None]
    if stated:
        return max(stated)[1]
    return None if any(n.json_object() is None for n in nodes) else 1


def _contender(queued, run, state, place):
    """Who from the lock- node; since when it holds, and what a rolling-lock holder applies, from
    the run- node (set once it holds the lock: recipes/lock.py publish())."""
    entry = who(queued)
    told = (run.json_object() if run is not None else None) or {}
    since = told.get("since")
    entry.update(state=state, place=place, node=queued.name, session=queued.session, queued_since=queued.created,
                 fencing_token=run.stat.czxid if run is not None else None,
                 run_node=run.name if run is not None else None,
                 since=safe.stamp(since), version=safe.integer(told.get("version")),
                 phase=told.get("phase") if told.get("phase") in PHASES else None)
    return entry


def _rollout(record, holders):
    """The failed-version record, and whether the rollout is paused. A holder says so itself (its
    run- node's "phase": exact). For a holder of an older zkherd that does not, it is inferred: it
    is the host that recorded the failure and queued before it did (--on-failure pause keeps the
    lock until a newer version is pushed; rollback releases it)."""
    failed, refused = None, None
    if record is not None:
        version, refused = recorded_version(record.data, record.stat.mzxid)
        doc = record.json_object() or {}
        failed = {"version": version, "id": safe.string(doc.get("id")), "host": safe.string(doc.get("host")),
                  "reason": safe.string(doc.get("reason"), safe.LONG), "time": safe.stamp(doc.get("time")),
                  "recorded_at": record.changed, "refused": refused}
    pausers = [h for h in holders if h["phase"] == "paused" or h["phase"] is None and failed is not None
               and refused is None and h["id"] is not None and h["id"] == failed["id"]
               and h["fencing_token"] is not None and h["fencing_token"] < record.stat.mzxid]
    return {"failed": failed, "paused": bool(pausers), "paused_by": [h["id"] for h in pausers],
            "paused_exact": all(h["phase"] is not None for h in holders),
            "restarting": [h["id"] for h in holders if h not in pausers]}


def read_pool(client, path, found, wait):
    members = [found[n] for n in in_order(found, MEMBER)]
    listed = [{"id": m.text(), "node": m.name, "session": m.session, "since": m.created,
               "leader": i == 0} for i, m in enumerate(members)]
    jobs = {}
    if TICKS in found:
        for job in sorted(children(client, paths.join(path, TICKS), wait) or {}):
            marks = children(client, paths.join(paths.join(path, TICKS), job), wait, wanted=_is_start) or {}
            jobs[job] = [_tick(marks[name]) for name in sorted(marks, key=int, reverse=True)[:RECENT_TICKS]]
    return {"kind": "pool", "leader": listed[0]["id"] if listed else None, "members": listed, "cron": jobs}


def _is_start(name):
    return name.isascii() and name.isdigit() and len(name) < 19


def _tick(mark):
    parsed = parse_marker(mark.data)
    if parsed is None:  # an older zkherd's "ID TOKEN TICK", or hand-made: it counts as started
        fields = mark.text().split()
        return {"start": safe.stamp(int(mark.name)), "id": fields[0] if fields else None, "state": "started",
                "member": None, "marked_at": mark.created}
    return {"start": safe.stamp(int(mark.name)), "id": safe.string(parsed.ident), "state": parsed.state,
            "member": safe.string(parsed.member, safe.LONG), "marked_at": mark.created}


def read_farm(client, path, found, wait):
    members = []
    for name in sorted(found):
        member = found[name]
        doc = member.json_object()
        members.append({"name": name, "session": member.session, "joined": member.created,
                        "changed": member.changed,
                        "fields": sorted(safe.string(key) for key in doc)[:safe.LISTED] if doc is not None else None})
    return {"kind": "farm", "members": members}


def read_registrations(nodes):
    return {"kind": "registration", "registrations": [
        {"node": n.name, "session": n.session, "since": n.created, "data": n.text()} for n in nodes]}


def registrations_of(client, path, wait):
    """The live registrations PATH<seq> of a registration path PATH (a sibling's name), or []."""
    prefix = path.rsplit("/", 1)[1]
    found = children(client, paths.parent(path), wait,
                     wanted=lambda name: name.startswith(prefix) and is_sequence(name[len(prefix):])) or {}
    return [found[n] for n in sorted(found, key=lambda name: int(name[-10:])) if found[n].ephemeral]


def recognize(client, path, wait):
    """The status of *path* as a dict with its "kind"; None if there is nothing at or for *path*."""
    found = children(client, path, wait)
    if found is None:
        registered = registrations_of(client, path, wait) if path != "/" else []
        return read_registrations(registered) if registered else None
    if in_order(found, QUEUE) or in_order(found, RUN) or FAILED in found:
        return read_lock(client, path, found, wait)
    if in_order(found, MEMBER) or TICKS in found:
        return read_pool(client, path, found, wait)
    if not found:
        registered = registrations_of(client, path, wait) if path != "/" else []
        return read_registrations(registered) if registered else {"kind": "empty"}
    live = [n for n in found.values() if n.ephemeral]
    if live and all(is_sequence(n.name[-10:]) for n in live):
        return read_registrations(sorted(live, key=lambda n: int(n.name[-10:])))
    if live and all(n.json_object() is not None for n in live):
        return read_farm(client, path, {n.name: n for n in live}, wait)
    here = node(client, path, wait)
    return {"kind": "unknown", "children": len(found), "ephemeral": len(live),
            "session": here.session if here is not None else None}
