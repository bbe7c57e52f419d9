# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection options shared by every zkherd.ops module and plugin.

Modules use C(zkherd.ops.connection) (their argument spec reads the environment); plugins add
C(zkherd.ops.connection.env), and lookups C(zkherd.ops.connection.vars) so that the same options
can come from variables.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  hosts:
    description:
      - ZooKeeper servers as C(host:port) pairs separated by commas, optionally followed by a
        chroot path, for example C(zk1:2181,zk2:2181,zk3:2181/apps). Every path the task uses
        is then relative to the chroot, which must exist.
      - Falls back to the environment variable E(ZKHERD_HOSTS).
    type: str
    default: 127.0.0.1:2181
  session_timeout:
    description:
      - ZooKeeper session timeout in seconds that the client asks for. The server clamps it
        between its C(minSessionTimeout) and C(maxSessionTimeout).
    type: float
    default: 10.0
  connect_timeout:
    description:
      - How long to try to connect, in seconds, before failing.
    type: float
    default: 10.0
  auth:
    description:
      - Credentials for ZooKeeper's C(digest) scheme as C(user:password). They are added to the
        session, so znodes whose ACL names this user become readable or writable.
      - Falls back to the environment variable E(ZKHERD_AUTH). Never logged.
    type: str
    aliases: [auth_credential]
  tls:
    description:
      - Connect with TLS (to the server's C(secureClientPort)). Implied when O(tls_ca),
        O(tls_system_ca), O(tls_cert) or O(tls_key) is given.
    type: bool
    default: false
  tls_ca:
    description:
      - PEM file with the certificate authorities that sign the server certificates. These are
        the only CAs trusted, unless O(tls_system_ca) is set as well.
      - Falls back to the environment variable E(ZKHERD_TLS_CA).
    type: path
  tls_system_ca:
    description:
      - Also trust the certificate authorities of the system's store (as OpenSSL finds it, for
        example C(/etc/ssl/certs)). Implies O(tls).
      - With TLS, O(tls_ca) or O(tls_system_ca) is needed - TLS that trusts no CA is refused.
      - Falls back to the environment variable E(ZKHERD_TLS_SYSTEM_CA).
    type: bool
    default: false
  tls_cert:
    description:
      - PEM client certificate, for servers that require client authentication. Needs O(tls_key).
      - Falls back to the environment variable E(ZKHERD_TLS_CERT).
    type: path
  tls_key:
    description:
      - PEM private key of O(tls_cert).
      - Falls back to the environment variable E(ZKHERD_TLS_KEY).
    type: path
  tls_check_hostname:
    description:
      - Check that the server certificate names the host connected to.
    type: bool
    default: true
requirements:
  - kazoo >= 2.9 (Python library) on the host that runs the task
"""

    # The ACL of the znodes a task creates (zkherd.ops.znode_tree, zkherd.ops.farm); parsed by
    # common/acl.py from the suboptions of zk_module.ACL_OPTIONS.
    ACL = r"""
options:
  acl:
    description:
      - ACL for the znodes the task creates. Existing znodes keep their ACL.
        Omitted, new znodes are open to everyone.
    type: list
    elements: dict
    suboptions:
      scheme:
        description:
          - V(world), V(ip), V(digest), or V(auth) - ZooKeeper's C(auth) scheme - for the digest user
            of the task's own O(auth) credentials (needed, else C(error_kind=usage)).
        type: str
        required: true
        choices: [world, ip, digest, auth]
      id:
        description:
          - For V(ip) the address or network; for V(digest) a hashed C(user:HASH), HASH being the
            base64 of the SHA-1 of C(user:password). A digest id that is not of this form is refused
            (and not repeated, since it may be a password given in the wrong place).
        type: str
      username:
        description: For V(digest), the user name.
        type: str
      password:
        description: For V(digest), the password; hashed before it is sent, never logged.
        type: str
      perms:
        description:
          - Permissions, a list of V(read), V(write), V(create), V(delete), V(admin), V(all),
            or letters like V(rwcda).
        type: raw
        default: all
"""

    # Attributes every zkherd module shares (each module adds check_mode and diff_mode), and the
    # error_kind of their task results (lookups and the inventory plugin have no task result).
    ATTRIBUTES = r"""
notes:
  - Errors carry an C(error_kind) in the task result, one of C(connect) (server unreachable, after
    O(connect_timeout)), C(auth) (ACL denies the credentials), C(no_node), C(exists), C(version)
    (compare-and-set lost), C(not_empty), C(usage) (bad input, nothing was changed) and C(other).
attributes:
  action_group:
    description: Use C(group/zkherd.ops.zookeeper) in C(module_defaults) to set the connection options once.
    support: full
    membership: [zkherd.ops.zookeeper]
  platform:
    platforms: posix
"""

    # Plugins (lookups, inventory) read the environment variables through Ansible's config.
    ENV = r"""
options:
  hosts:
    env:
      - name: ZKHERD_HOSTS
  auth:
    env:
      - name: ZKHERD_AUTH
  tls_ca:
    env:
      - name: ZKHERD_TLS_CA
  tls_cert:
    env:
      - name: ZKHERD_TLS_CERT
  tls_key:
    env:
      - name: ZKHERD_TLS_KEY
  tls_system_ca:
    env:
      - name: ZKHERD_TLS_SYSTEM_CA
"""

    # Lookups also take every option from a variable (in group_vars, say).
    VARS = r"""
notes:
  - C(module_defaults) do not reach lookups, not even C(group/zkherd.ops.zookeeper) - they only fill in
    module arguments. A lookup takes its connection options from its own arguments (C(hosts=...)), else
    from the variables below (C(zkherd_hosts), C(zkherd_auth), ...), else from the controller's
    environment (E(ZKHERD_HOSTS), ...; a play's C(environment) does not reach it either), else the
    defaults. Set the variables once and pass them to C(module_defaults) to serve modules and lookups.
  - A lookup that cannot connect fails after O(connect_timeout) with the servers and the reason, and
    says so when O(hosts) is the default. Lookups for the same servers and options that
    follow within a second (the rest of the same template) fail at once with the same message instead
    of waiting again.
options:
  hosts:
    vars:
      - name: zkherd_hosts
  session_timeout:
    vars:
      - name: zkherd_session_timeout
  connect_timeout:
    vars:
      - name: zkherd_connect_timeout
  auth:
    vars:
      - name: zkherd_auth
  tls:
    vars:
      - name: zkherd_tls
  tls_ca:
    vars:
      - name: zkherd_tls_ca
  tls_cert:
    vars:
      - name: zkherd_tls_cert
  tls_key:
    vars:
      - name: zkherd_tls_key
  tls_check_hostname:
    vars:
      - name: zkherd_tls_check_hostname
  tls_system_ca:
    vars:
      - name: zkherd_tls_system_ca
"""
