"""The farm's real consumers on the boxes (playbooks/farm.yml), seen through real requests: curl
from each box through its haproxy and its nginx, whose backend sections zkherd farm export renders
from the farm /services/web. Used by tests/support/sitecheck.py (the demo prints it, molecule's
verify asserts it):

- every member serves (round robin: the answers name each member);
- a member that leaves the farm (its farm member unit stopped) gets no more traffic within a session
  timeout, on every box, through both proxies;
- a bad push (a member's port set to "x y") is rejected by the check commands (haproxy -c, nginx -t),
  the installed files stay as they were and traffic keeps flowing; the fix puts things back.
"""

from __future__ import annotations

import json
import re
import time

FARM = "/services/web"
HAPROXY = ("haproxy", "/etc/haproxy/haproxy.cfg", r"^\s*bind\s+([\d.]+:\d+)", "/etc/haproxy/backends/web.cfg",
           "zkherd-farm-export-web-haproxy.service")
NGINX = ("nginx", "/etc/nginx/conf.d/web.conf", r"^\s*listen\s+([\d.]+:\d+)", "/etc/nginx/upstreams/web.conf",
         "zkherd-farm-export-web-nginx.service")
MEMBER_UNIT, MEMBER_SETTINGS = "zkherd-farm-member-web.service", "/etc/zkherd/farm-member-web.yml"
REJECTED = "check command rejected the new export"
RUN = 6  # requests in a row: as many as two rounds of three members


class Consumers:
    def __init__(self, site, failure):
        self.site, self.failure = site, failure
        self.proxies = {}  # (box, name) -> (address, backend file, export unit)
        for box in sorted(site.boxes):
            for name, conf, pattern, backend, unit in (HAPROXY, NGINX):
                found = re.search(pattern, site.sh(box, "cat", conf).stdout, re.M)
                if not found:
                    raise failure("%s: no address to reach %s in %s" % (box, name, conf))
                self.proxies[(box, name)] = (found.group(1), backend, unit)

    def ask(self, box, proxy, count):
        """The answers of *count* requests from *box* through its *proxy*, one connection each
        ('-' for a failed request)."""
        url = "http://%s/" % self.proxies[(box, proxy)][0]
        script = 'for i in $(seq %d); do curl -fs -m 3 "$0" || echo -; done' % count  # the pages end with a newline
        return [line.strip() for line in self.site.sh(box, "sh", "-c", script, url).stdout.splitlines() if line.strip()]

    def members(self):
        return sorted(self.site.zk.get_children(FARM))

    def serving(self, box, proxy, expected, timeout=60):
        """A run of RUN requests from *box* through *proxy* whose answers name exactly the *expected*
        members, waited for."""
        seen = []

        def run():
            seen[:] = self.ask(box, proxy, RUN)
            return seen if sorted(set(seen)) == sorted(expected) else None

        try:
            return self.site.wait("%s on %s serving from each of %s" % (proxy, box, ", ".join(expected)), run, timeout)
        except self.failure as exc:
            raise self.failure("%s (%d requests answered: %s)" % (exc, RUN, " ".join(seen))) from None

    def all_serve(self):
        members = self.site.wait("%s has one member per box" % FARM,
                                 lambda: self.members() if self.members() == sorted(self.site.boxes) else None, 60)
        for box, proxy in sorted(self.proxies):
            answers = self.serving(box, proxy, members)
            yield "consumers: %s on %s (%s): %d requests -> %s" % (
                proxy, box, self.proxies[(box, proxy)][0], RUN, " ".join(answers))

    def session_timeout(self, box):
        found = re.search(r"^session_timeout:\s*([\d.]+)", self.site.sh(box, "cat", MEMBER_SETTINGS).stdout, re.M)
        return float(found.group(1)) if found else 10.0

    def leave(self):
        """Stop one member's farm member unit (its backend keeps running): every proxy on every box
        stops sending it traffic, each within a session timeout."""
        leaver = sorted(self.site.boxes)[1]
        limit = self.session_timeout(leaver)
        stopped = time.monotonic()
        self.site.sh(leaver, "systemctl", "stop", MEMBER_UNIT, check=True)
        took = {}
        try:
            while len(took) < len(self.proxies) and time.monotonic() < stopped + 3 * limit:
                for key in sorted(set(self.proxies) - set(took)):
                    if leaver not in self.ask(*key, RUN):  # a whole run without it
                        took[key] = time.monotonic() - stopped
        finally:
            self.site.sh(leaver, "systemctl", "start", MEMBER_UNIT, check=True)
        late = sorted("%s on %s" % (proxy, box) for box, proxy in set(self.proxies) - set(took))
        if late:
            raise self.failure("%s still got traffic %.0f s after leaving the farm through %s" % (
                leaver, 3 * limit, ", ".join(late)))
        if max(took.values()) > limit:
            raise self.failure("%s got traffic for %.1f s after leaving, more than a session timeout (%.0f s)" % (
                leaver, max(took.values()), limit))
        yield ("consumers: systemctl stop %s on %s -> no more traffic to it through haproxy and nginx on every box "
               "%.1f s later at most (%s; session timeout %.0f s)" % (
                   MEMBER_UNIT, leaver, max(took.values()),
                   ", ".join("%s/%s %.1f s" % (b, p, t) for (b, p), t in sorted(took.items())), limit))
        members = self.site.wait("%s back in %s" % (leaver, FARM),
                                 lambda: self.members() if leaver in self.members() else None, 60)
        for box, proxy in sorted(self.proxies):
            self.site.wait("%s on %s serves %s again" % (proxy, box, leaver),
                           lambda box=box, proxy=proxy: leaver in self.ask(box, proxy, RUN), 60)
        yield "consumers: %s joined again -> served again by every proxy (%s)" % (leaver, ", ".join(members))

    def bad_push(self):
        """A member's port set to "x y" in ZooKeeper: both check commands reject the staged file, the
        installed files stay, traffic keeps flowing from every member; then the port is put back."""
        victim = sorted(self.site.boxes)[-1]
        node = "%s/%s" % (FARM, victim)
        data, _stat = self.site.zk.get(node)
        good = json.loads(data)
        before = {key: self.site.sh(key[0], "cat", path).stdout for key, (_a, path, _u) in self.proxies.items()}
        since = time.time()
        self.site.zk.set(node, json.dumps(dict(good, port="x y")).encode())
        try:
            for box, proxy in sorted(self.proxies):
                unit = self.proxies[(box, proxy)][2]
                self.site.wait("%s's export on %s rejects the bad push" % (proxy, box), lambda box=box, unit=unit: any(
                    REJECTED in m for _t, m in self.site.journal(box, unit, since - 1)), 60)
            changed = [key for key, text in before.items()
                       if self.site.sh(key[0], "cat", self.proxies[key][1]).stdout != text]
            if changed:
                raise self.failure("the bad push replaced %s" % ", ".join("%s on %s" % (p, b) for b, p in changed))
            samples = {key: self.serving(*key, self.members()) for key in sorted(self.proxies)}
        finally:
            self.site.zk.set(node, json.dumps(good).encode())
        box, proxy = sorted(samples)[0]
        yield ("consumers: bad push (%s port = \"x y\") -> rejected by haproxy -c and nginx -t on every box (\"%s\" "
               "in the journals), the files unchanged, traffic kept flowing: %s on %s -> %s" % (
                   node, REJECTED, proxy, box, " ".join(samples[(box, proxy)])))
        for key in sorted(self.proxies):
            self.serving(*key, self.members())
        yield "consumers: port put back -> every proxy on every box serves every member"

    def checks(self):
        yield from self.all_serve()
        yield from self.leave()
        yield from self.bad_push()
