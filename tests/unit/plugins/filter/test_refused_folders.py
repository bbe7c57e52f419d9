from __future__ import annotations

from ansible_collections.zkherd.ops.plugins.filter.refused_folders import refused_folders


def test_shared_system_folders_are_refused_their_subfolders_are_not():
    assert refused_folders(["/etc", "/etc/", "/etc/./", "/var/lib", "/etc/haproxy", "/srv/app"]) == [
        "/etc", "/etc/", "/etc/./", "/var/lib"]


def test_zkherds_own_folders_are_refused_with_everything_below():
    assert refused_folders(["/etc/zkherd", "/etc/zkherd/templates/x", "/etc/zkherd-other"]) == [
        "/etc/zkherd", "/etc/zkherd/templates/x"]
    assert refused_folders(["/opt/zk/conf/a", "/opt/zkx"], ["/opt/zk/conf", ""]) == ["/opt/zk/conf/a"]


def test_each_refused_folder_once():
    assert refused_folders(["/etc", "/etc", "/tmp"]) == ["/etc", "/tmp"]
    assert refused_folders([]) == []
