# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zkherd.ops.zookeeper_hosts: where the inventory's ZooKeeper servers listen for clients, as a
connection string - the default ZooKeeper hosts of every role, so that runners connect where the
zookeeper role binds the client port (zoo.cfg's clientPortAddress), not to 127.0.0.1:2181."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The runner's own default, for an inventory without the group.
DEFAULT_HOSTS = "127.0.0.1:2181"
# The zookeeper role's defaults (roles/zookeeper/defaults/main.yml), which hostvars do not show.
CLIENT_PORT = 2181
EVERY_ADDRESS = ("", "0.0.0.0", "::")


def _port(value, host, name):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(
            "zkherd.ops.zookeeper_hosts: %s of %s is not a port: %r" % (name, host, value)) from None


def _client_address(host, hostvars):
    """'address:port' where *host*'s server takes clients: the TLS port when it has one (the plain
    port is then closed, or kept for local tools), on the address zoo.cfg binds it to."""
    own = hostvars.get("zookeeper_address") or hostvars.get("ansible_host") or host
    secure = _port(hostvars.get("zookeeper_secure_client_port") or 0, host, "zookeeper_secure_client_port")
    if secure > 0:
        port, address = secure, hostvars.get("zookeeper_secure_client_address", own)
    else:
        port = _port(hostvars.get("zookeeper_client_port") or CLIENT_PORT, host, "zookeeper_client_port")
        address = hostvars.get("zookeeper_client_address", own)
    address = str(own if str(address or "") in EVERY_ADDRESS else address)
    return ("[%s]:%d" if ":" in address else "%s:%d") % (address, port)


def zookeeper_hosts(groups, hostvars, group="zookeeper"):
    """groups | zkherd.ops.zookeeper_hosts(hostvars[, group]) -> 'a:2181,b:2181', or DEFAULT_HOSTS."""
    found = []
    for host in (groups or {}).get(group) or []:
        entry = _client_address(host, hostvars[host])
        if entry not in found:
            found.append(entry)
    return ",".join(found) or DEFAULT_HOSTS


class FilterModule:
    def filters(self):
        return {"zookeeper_hosts": zookeeper_hosts}
