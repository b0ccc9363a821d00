from server.monitor.presence import Presence


def test_a_visitor_moves_reports_and_leaves():
    clock = iter([10.0, 11.5])
    presence = Presence(clock=lambda: next(clock))
    presence.arrive("s1", "p1", "kitchen", 0, "consent")
    presence.moved("s1", 2, "game")
    presence.report("s1", {"rtt_ms": 40.0, "frame": 120})
    visitor = presence.of("s1")
    assert (visitor.scene_index, visitor.scene_id, visitor.vitals, visitor.vitals_at) == \
        (2, "game", {"rtt_ms": 40.0, "frame": 120}, 11.5)
    assert list(presence.in_experiment("kitchen")) == ["s1"] and presence.in_experiment("other") == {}
    presence.gone("s1")
    assert presence.of("s1") is None


def test_reports_from_unknown_sockets_are_ignored():
    presence = Presence()
    presence.report("nobody", {"rtt_ms": 1.0})
    presence.moved("nobody", 1, None)
    assert presence.visitors == {}
