"""Test support: real ZooKeeper servers, fault proxy and kazoo helpers."""
