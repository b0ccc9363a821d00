"""Turns bench results into the plot and the README table."""

from __future__ import annotations

from pathlib import Path

MODES = ("worker", "main_thread")
FOUNDATION_ROWS = [
    ("Pyodide ready (navigation → READY), median ms", "pyodide_ready_ms", "median", ""),
    ("Env ready (navigation → env loaded), median ms", "env_ready_ms", "median", ""),
    ("Longest main-thread stall, navigation → env ready, median ms", "init_stall_ms", "median", ""),
    ("Longest main-thread stall, our code start → env ready, median ms", "init_stall_after_main_ms",
     "median", "≤ 50 (worker)"),
    ("Socket.IO disconnects during init", "disconnects", "median", "0"),
    ("STEP round trip p50, ms (1,000 steps)", "step_rtt_ms", "p50", "≤ 1"),
    ("STEP round trip p99, ms", "step_rtt_ms", "p99", "≤ 4"),
    ("STEP time inside the env runtime p50, ms", "step_in_worker_ms", "p50", ""),
    ("8-step BATCH (restore + 8 steps + snapshot + hash) round trip p50, ms (300 batches)",
     "batch8_rtt_ms", "p50", "≤ 2"),
    ("8-step BATCH round trip p99, ms", "batch8_rtt_ms", "p99", ""),
    ("8-step BATCH inside the env runtime p50, ms", "batch8_in_worker_ms", "p50", ""),
]


def delivered(counts: dict | None, how: str = "") -> str:
    """A latency's counts (bench.common.delivery) for its table cell."""
    if not counts:
        return "–"
    return (f"{counts['arrived']:,} of {counts['sent']:,} sent{how}; refused {counts['refused']:,}, "
            f"lost {counts['lost']:,}")


def markdown(results: dict) -> str:
    m = results["machine"]
    f = results["figures"]
    dates = results.get("dates", {})
    when = "; ".join(f"{k} {v}" for k, v in dates.items()) or results["date"]
    lines = [
        f"Measured on {m['cpu']} ({m['cores']} cores), {m['browser']} ({when}), "
        f"{results['runs_per_mode']} page loads per mode, by `nox -s bench` "
        "(raw figures: `bench/results.json`, plot: `bench/results.png`).",
        "",
        "**Foundation** — single-player `catch` env",
        "",
        "| figure | worker (default) | `?worker=0` (Pyodide on main thread) | target |",
        "|---|---:|---:|---|",
    ]
    for label, key, stat, target in FOUNDATION_ROWS:
        lines.append(f"| {label} | {f[key]['worker'][stat]:g} | {f[key]['main_thread'][stat]:g} | {target} |")
    mp = results.get("multiplayer")
    if mp:
        lines += ["", "**Multiplayer** — two-player `kitchen` env", "",
                  "| figure | worker (default) | `?worker=0` | target |", "|---|---:|---:|---|"]
        for depth, fig in mp["rollback_batch_ms"].items():
            lines.append(f"| rollback BATCH, {depth} frame(s), p50 / p99 ms | {fig['worker']['p50']:g} / "
                         f"{fig['worker']['p99']:g} | {fig['main_thread']['p50']:g} / {fig['main_thread']['p99']:g}"
                         f" | {'≤ 3 p50' if depth == '8' else ''} |")
        for n, fig in mp["concurrent_init"].items():
            lines.append(f"| {n} room(s) ({2 * int(n)} pages) booting at once: disconnects (all ready after) "
                         f"| {fig['worker']['disconnects']} ({fig['worker']['all_ready_s']} s) | "
                         f"{fig['main_thread']['disconnects']} ({fig['main_thread']['all_ready_s']} s) | 0 |")
        relay = mp["relay"]
        counted = delivered({"arrived": relay["relay_one_way_ms"]["n"], **relay},
                            f" at {relay.get('inputs_per_s', '?')}/s")
        lines += ["", "| relay (loopback, python-socketio clients) | p50 ms | p99 ms | inputs measured |",
                  "|---|---:|---:|---|",
                  f"| input relayed client → server → partner (one way) | {relay['relay_one_way_ms']['p50']:g} | "
                  f"{relay['relay_one_way_ms']['p99']:g} | {counted} |",
                  f"| baseline: emit-with-ack round trip to the server | {relay['direct_ack_rtt_ms']['p50']:g} | "
                  f"{relay['direct_ack_rtt_ms']['p99']:g} | {relay['direct_ack_rtt_ms']['n']} acks at "
                  f"{relay.get('inputs_per_s', '?')}/s; refused {relay.get('direct_refused', '?')} |",
                  "", "| injected one-way delay | rollbacks / min (mean of both players) | mean rollback depth "
                  "(frames) | room |", "|---:|---:|---:|---|"]
        for delay, fig in mp["rollback_rate"].items():
            lines.append(f"| {delay} ms | {fig['rollbacks_per_min']:g} | {fig['mean_depth']:g} | "
                         f"{', '.join(fig['room_status'])} |")
    ing = results.get("ingest")
    if ing:
        real, sio, direct, exp = ing["realistic_50x30"], ing["socketio_max"], ing["direct_store_max"], ing["export_1m"]
        lines += ["", "**Data** — step records into SQLite (load generator on the same 2 cores)", "",
                  "| figure | value | baseline in the same run | target |", "|---|---:|---:|---|",
                  f"| ingest through Socket.IO (validated, acknowledged), 50 clients, batches of 500 | "
                  f"{sio['records_per_s']:,} records/s | {direct['records_per_s']:,} records/s straight into the store | ≥ 50,000/s |",
                  f"| of which batches acknowledged | {delivered(sio.get('delivery'))} | | 0 refused, 0 lost |",
                  f"| ack latency, 50 participants × 30 steps/s, p50 / p99 | {real['ack_ms']['p50']:g} / "
                  f"{real['ack_ms']['p99']:g} ms | | |",
                  f"| of which batches acknowledged (one per second each) | {delivered(real.get('delivery'))} | | "
                  "0 refused, 0 lost |",
                  f"| export of {exp['rows']:,} step rows (CSV + Parquet + manifest) | {exp['export_s']:g} s | "
                  f"{exp['baseline_select_all_s']:g} s to read them with `SELECT *` | |"]
        if "socketio_max_postgres" in ing:
            lines += [f"| the same ingest into Postgres 15 (started by the bench, default settings) | "
                      f"{ing['socketio_max_postgres']['records_per_s']:,} records/s | "
                      f"{ing['direct_store_max_postgres']['records_per_s']:,} records/s straight into the store | |",
                      f"| of which batches acknowledged | {delivered(ing['socketio_max_postgres'].get('delivery'))} | "
                      "| 0 refused, 0 lost |"]
    lines += _scale_lines(results.get("scale")) + _capacity_lines(results.get("capacity"))
    lines += _fuzz_lines(results.get("fuzz"))
    lines += _scenes_lines(results.get("scenes"))
    lines += _frames_lines(results.get("frames"))
    lines += _replay_lines(results.get("replay_burst"))
    lines += _policies_lines(results.get("policies"))
    lines += _reload_lines(results.get("reload"))
    lines += _monitor_lines(results.get("monitor"))
    lines += _viewer_lines(results.get("viewer"))
    return "\n".join(lines)


SCALE_SIDES = {"coplay": "Coplay (granian), 1 process", "coplay_hypercorn": "Coplay on hypercorn, 1 process",
               "baseline": "bare python-socketio relay (granian), 1 process",
               "two_processes_redis": "Coplay, 2 processes + Redis",
               "coplay_bare_bots": "Coplay (granian), 1 process"}
SCALE_SHORT = {"coplay": "Coplay", "coplay_hypercorn": "hypercorn", "baseline": "bare",
               "two_processes_redis": "Redis x2", "coplay_bare_bots": "Coplay"}


SETUP_TARGETS = {"1": "≥ 100 rooms", "1r": "(the layer's own cost)"}


def _setup_label(count: str) -> str:
    if count in ("1", "1r"):
        return "Coplay, 1 process" + (" + Redis" if count == "1r" else "")
    return f"Coplay, {count} processes + Redis"


def _pair(lat: dict | None) -> str:
    return f"{lat['p50']:g} / {lat['p99']:g}" if lat else "–"


def _listed(values: list | None) -> str:
    return ", ".join(f"{v:g}" for v in values) if values else "–"


def _scale_lines(scale: dict | None) -> list[str]:
    """bench/load.py run(): the simulated participants' setups (1, 2, 3 processes), hypercorn,
    and the bare input bots against Coplay and the bare relay. An older results.json (before
    the pilot drove the levels) is shown as it was measured."""
    if not scale:
        return []
    if "processes" not in scale:
        return _scale_lines_bare_bots_only(scale)
    st = scale.get("settings", {})
    pinned = "each server process pinned to a core of its own and the bots to the others when the machine has " \
        "more cores than server processes, else the server processes share every core but one and the bots " \
        "have that one (unpinned, the bots' interference cost the servers up to 20 % more CPU per input); " \
        "\"1 process + Redis\" is one process with the multi-process layer on: that layer's own cost"
    lines = ["", f"**Scale** — two-player rooms at 30 inputs/s per seat, played by the pilot's simulated participants "
             f"({st.get('bot_processes', 2)} bot processes): each walks the load study (consent, the two-player game on the "
             "page's rollback netcode with a light env stepped in CPython, a survey), uploading its steps and "
             f"reporting state hashes; a room's two participants on {'the same server process' if st.get('placement', 'sticky') == 'sticky' else 'random server processes'}; "
             f"several processes share one database and one Redis. {pinned[0].upper() + pinned[1:]}. Run-queue wait: time the "
             "server's Python thread was ready but had no CPU", "",
             "| setup | rooms | relay one way p50 / p99 ms | inputs sent / relayed / refused / lost | rooms completed "
             "| server CPU % per process (run-queue wait %) | CPU ms per relayed input, per process | RSS MB per room "
             "| lost records | within target |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    sides = [(_setup_label(count), levels) for count, levels in scale["processes"].items()]
    sides.append((SCALE_SIDES["coplay_hypercorn"], scale.get("coplay_hypercorn") or {}))
    for label, levels in sides:
        for n, lv in levels.items():
            lines.append(f"| {label} | {n} | {_pair(lv.get('relay_one_way_ms'))} | {lv['inputs_sent']} / "
                         f"{lv['inputs_relayed']} / {lv['inputs_refused']} / {lv['inputs_lost']} | "
                         f"{lv.get('rooms_completed', '–')} of {lv['rooms']} | "
                         f"{_listed(lv.get('server_cpu_percent_by_process'))} ({lv.get('server_runqueue_wait_percent', 0):g}) | "
                         f"{_listed(lv.get('server_cpu_ms_per_input_by_process'))} | {lv.get('rss_per_room_mb', 0):g} | "
                         f"{lv.get('lost_records', '–')} | {'yes' if lv['within_target'] else 'no'}"
                         f"{' (bots saturated)' if lv.get('bots_saturated') else ''} |")
    lines += ["", "| setup | rooms within target (p99 ≤ 20 ms, nothing lost, all completed) | CPU ms per relayed input, "
              "per process (at rooms) | Redis CPU % | rooms per fully used core (rooms / Σ process CPU) | vs 1 process "
              "| target |", "|---|---:|---:|---:|---:|---:|---|"]
    for count, setup in scale.get("setups", {}).items():
        at = setup.get("projection_rooms")
        where = f" ({at}{'' if setup.get('projection_within_target') else ', not within target'})" if at else ""
        ratio, same = setup.get("capacity_vs_one_process"), setup.get("capacity_vs_one_process_same_rooms")
        lines.append(f"| {_setup_label(count)} | {setup['rooms_within_target']} | "
                     f"{_listed(setup.get('server_cpu_ms_per_input_by_process'))}{where} | "
                     f"{setup.get('redis_cpu_percent', '–')} | {setup.get('projected_rooms_per_core') or '–'} | "
                     f"{f'{ratio * 100:.0f} %' if ratio is not None else '–'}"
                     f"{f' ({same * 100:.0f} % at {at} rooms)' if same is not None and count != '1' else ''} | "
                     f"{SETUP_TARGETS.get(count, '≥ 90 % of 1 process')} |")
    bare = [(SCALE_SIDES["coplay_bare_bots"], scale.get("coplay_bare_bots") or {}),
            (SCALE_SIDES["baseline"], scale.get("baseline") or {})]
    if any(levels for _, levels in bare):
        lines += ["", "The bare python-socketio relay speaks no study, so it is measured with bare input bots (an input "
                  "message every 1/30 s per seat, nothing simulated, rooms end `desync`), beside Coplay with the same bots:",
                  "", *_bare_header("bare input bots")]
        lines += [_bare_row(label, n, lv) for label, levels in bare for n, lv in levels.items()]
    proj = scale.get("projected_rooms_per_core", {})
    lines += ["", f"Rooms within target on one process: **{scale.get('max_rooms_within_target')}** (target ≥ 100). "
              f"Rooms one fully used core would hold at the CPU measured at the largest load within target: "
              f"Coplay with simulated participants {proj.get('coplay')}; with bare input bots Coplay "
              f"{proj.get('coplay_bare_bots')}, bare python-socketio relay {proj.get('baseline')}."]
    return lines


def _bare_header(first: str) -> list[str]:
    return [f"| {first} | rooms | relay one way p50 / p99 ms | relayed inputs lost | server CPU % (run-queue wait %) "
            "| CPU ms per input | RSS MB per room | lost records | within target |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|"]


def _bare_row(label: str, n: str, lv: dict) -> str:
    """A level of bare input bots (the relay's figures only)."""
    return (f"| {label} | {n} | {_pair(lv.get('relay_one_way_ms'))} | {lv['relay_lost_messages']} | "
            f"{lv['server_cpu_percent']:g} ({lv['server_runqueue_wait_percent']:g}) | "
            f"{lv['server_cpu_ms_per_input']} | {lv['rss_per_room_mb']:g} | "
            f"{lv.get('lost_records', '–')} | {'yes' if lv['within_target'] else 'no'} |")


def _capacity_lines(cap: dict | None) -> list[str]:
    """bench/load.py capacity(): the setups at one load, trials interleaved, medians."""
    if not cap:
        return []
    lines = ["", f"**Capacity per process** — every setup at {cap['rooms']} rooms of simulated participants, "
             f"{cap['trials']} trials with the setups interleaved (this VM's speed drifts 10-20 % between runs "
             "minutes apart), the same pinning as above", "",
             "| setup | server CPU ms per relayed input, summed over processes (trials) | median | "
             "relay p99 ms (trials) | lost / refused | rooms completed | capacity vs 1 process (1's median / "
             "this median) | target |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, runs in cap["runs"].items():
        ratio = cap["capacity_vs_one_process"].get(name)
        lines.append(f"| {_setup_label(name)} | {_listed([r['server_cpu_ms_per_input'] for r in runs])} | "
                     f"{cap['median_cpu_ms_per_input'][name]:g} | {_listed([r['relay_p99_ms'] for r in runs])} | "
                     f"{sum(r['inputs_lost'] for r in runs)} / {sum(r['inputs_refused'] for r in runs)} | "
                     f"{sum(r['rooms_completed'] or 0 for r in runs)} of {cap['rooms'] * len(runs)} | "
                     f"{f'{ratio * 100:.0f} %' if ratio is not None else '–'} | "
                     f"{'' if name in ('1', '1r') else '≥ 90 %'} |")
    return lines


def _scale_lines_bare_bots_only(scale: dict) -> list[str]:
    lines = ["", "**Scale** — two-player rooms at 30 inputs/s per seat (python-socketio bots in 2 processes). "
             "One server process runs pinned to one core, the bots on the other; the two Redis-sharing "
             "processes are not pinned and share both cores with the bots. Run-queue wait: time the server's "
             "Python thread was ready but had no CPU", "", *_bare_header("setup")]
    lines += [_bare_row(label, n, lv) for side, label in SCALE_SIDES.items() for n, lv in scale.get(side, {}).items()]
    proj = scale.get("projected_rooms_per_core", {})
    lines += ["", f"Rooms within target (p99 ≤ 20 ms, 0 lost) on one process: "
              f"**{scale.get('max_rooms_within_target')}** (target ≥ 100). Rooms one fully used core would hold at "
              f"the CPU per input measured at the largest load within target: Coplay {proj.get('coplay')}, "
              f"bare python-socketio relay {proj.get('baseline')}."]
    return lines


def _scenes_lines(sc: dict | None) -> list[str]:
    if not sc:
        return []
    return ["", "**Game scenes** — one Pyodide per visit (`catch`, then the multi-file maze)", "",
            "| a game scene's start → its first frame drawn, median ms (runs) | value | target |",
            "|---|---:|---|",
            f"| first game of the visit (navigation → playable: Pyodide boots) | {sc['first']['median']:g} "
            f"({', '.join(f'{v:g}' for v in sc['first']['runs'])}) | |",
            f"| later game, its env prepared during the scene before | {sc['later']['median']:g} "
            f"({', '.join(f'{v:g}' for v in sc['later']['runs'])}) | ≤ 150 |",
            f"| baseline: the same later game on a page of its own (navigation → playable) | "
            f"{sc['later_own_page']['median']:g} ({', '.join(f'{v:g}' for v in sc['later_own_page']['runs'])}) | |"]


def _fuzz_lines(fz: dict | None) -> list[str]:
    if not fz:
        return []
    lat, counts = fz["relay_one_way_ms"], fz.get("relay_delivery", {})
    att = fz["attacker_counts"]
    return ["", "**Hostile input** — a good room plays while hostile clients send malformed events", "",
            "| figure | with attackers | without (same run) | target |", "|---|---:|---:|---|",
            f"| good room relay one way p50 / p99 ms | {lat['attacked']['p50']:g} / {lat['attacked']['p99']:g} | "
            f"{lat['quiet']['p50']:g} / {lat['quiet']['p99']:g} | |",
            f"| of which p0's inputs (30/s) | {delivered(counts.get('attacked'))} | "
            f"{delivered(counts.get('quiet'))} | 0 refused, 0 lost |",
            f"| good room events refused / never acknowledged (any event, both runs) | "
            f"{fz.get('good_room_refused_acks', '–')} / {fz.get('good_room_unanswered', '–')} | | 0 / 0 |",
            f"| good room ends | {fz['room_status']['attacked']} | {fz['room_status']['quiet']} | completed |",
            f"| hostile events refused per second ({fz['attackers']} clients) | {fz['rejected_per_s']:g} | | |",
            f"| hostile events (meant to be refused, {fz['offered_per_client_per_s']:g}/s per client): sent, "
            f"refused, accepted, never answered (dropped for abuse first; reconnects) | {att['sent']:,}, "
            f"{att['refused']:,}, {att['accepted']:,}, {att.get('unanswered', '–')} ({att['reconnects']}) | | |",
            f"| server crashes | {fz['crashes']} | | 0 |"]


FRAMES_SIDES = (("rgb", "RGB frame (worker)"), ("rects", "25 rect drawables (worker)"),
                ("rgb_main_thread", "RGB frame (`?worker=0`)"))


def _frames_lines(fr: dict | None) -> list[str]:
    if not fr:
        return []
    lines = ["", f"**Frames** — a {fr['frame']} RGB frame every step at {fr['fps']} fps vs the same scene "
             f"as rect drawables ({fr['rgb']['frames']} frames per column, {fr['runs']} page loads each)", "",
             "| figure | " + " | ".join(label for _, label in FRAMES_SIDES) + " | target |",
             "|---|" + "---:|" * len(FRAMES_SIDES) + "---|"]
    rows = [("STEP sent → frame drawn p50 / p99, ms", "total_ms", "≤ 8 p99 (RGB, worker)"),
            ("of which inside the worker (env step + render + RGBA) p50 / p99, ms", "worker_ms", ""),
            ("of which drawing on the canvas p50 / p99, ms", "draw_ms", "")]
    for label, key, target in rows:
        cells = [f"{fr[side][key]['p50']:g} / {fr[side][key]['p99']:g}" for side, _ in FRAMES_SIDES]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    cells = [f"{fr[side]['dropped']} (max {fr[side]['max_late_ms']:g} ms late)" for side, _ in FRAMES_SIDES]
    lines.append("| dropped frames (drawn over a frame after their slot) | " + " | ".join(cells) + " | 0 (RGB) |")
    return lines


POLICY_SIDES = (("none", "worker", "no AI (worker)"), ("mlp", "worker", "MLP 2×64 (worker)"),
                ("gru", "worker", "GRU 64 (worker)"), ("none", "main_thread", "no AI (`?worker=0`)"),
                ("mlp", "main_thread", "MLP, main thread (MUG-style)"),
                ("gru", "main_thread", "GRU, main thread (MUG-style)"))


def _policies_lines(po: dict | None) -> list[str]:
    if not po:
        return []
    sides = [(po[model][mode], label) for model, mode, label in POLICY_SIDES]
    frames = sides[0][0]["frames"]

    def cells(fn) -> str:
        return " | ".join(fn(s) for s, _ in sides)

    def pair(fig: dict | None) -> str:
        return f"{fig['p50']:g} / {fig['p99']:g}" if fig else "–"

    return ["", f"**AI partners** — an ONNX policy deciding every frame at {po['fps']} fps (obs {po['obs']} "
            f"numbers, {po['actions']} actions; {frames} frames per column, {po['runs']} page loads each); "
            "the main-thread columns run the same models on the page's own thread, as MUG does", "",
            "| figure | " + " | ".join(label for _, label in sides) + " | target |",
            "|---|" + "---:|" * len(sides) + "---|",
            "| decision (observation → action, inference awaited) p50 / p99, ms | "
            + cells(lambda s: pair(s.get("decide_ms"))) + " | ≤ 1 / ≤ 5 (worker) |",
            "| the model's own awaited run, back to back at load (median of 10), ms | "
            + cells(lambda s: ", ".join(f"{v:g}" for v in s.get("model_run_ms", [])) or "–") + " | |",
            "| frames that played an older decision | " + cells(lambda s: str(s.get("held", "–"))) + " | |",
            "| STEP sent → frame drawn p50 / p99, ms | " + cells(lambda s: pair(s["total_ms"])) + " | |",
            "| dropped frames | " + cells(lambda s: str(s["dropped"])) + " | no more than without AI |",
            "| longest main-thread stall during play, ms | " + cells(lambda s: f"{s['stall_ms']:g}")
            + " | unchanged by the AI (worker) |",
            "| ONNX session create + warm-up while the page loads, ms | "
            + cells(lambda s: ", ".join(f"{v:g}" for v in s["setup_ms"]) if "setup_ms" in s else "–") + " | |"]


def _reload_lines(rl: dict | None) -> list[str]:
    if not rl:
        return []
    return ["", f"**Reload** — a page of a two-player `kitchen` room reloaded {rl['played_s']:g} s into the "
            f"episode (frames {', '.join(map(str, rl['frames_at_reload']))})", "",
            "| figure | median | runs | target |", "|---|---:|---|---|",
            f"| reload → playing again, s | {rl['reload_to_playing_s']['median']:g} | "
            f"{', '.join(f'{v:g}' for v in rl['reload_to_playing_s']['runs'])} | ≤ 5 |",
            f"| of which rebuilding the game from the room's record, ms | {rl['rebuild_ms']['median']:g} | "
            f"{', '.join(f'{v:g}' for v in rl['rebuild_ms']['runs'])} | |",
            f"| baseline: the page's first boot (navigation → ready), s | {rl['first_boot_s']['median']:g} | "
            f"{', '.join(f'{v:g}' for v in rl['first_boot_s']['runs'])} | |"]


def _monitor_lines(mo: dict | None) -> list[str]:
    if not mo:
        return []

    def row(label: str, fig: dict) -> str:
        counts = "; ".join(delivered(c) for c in fig["delivery"]) if "delivery" in fig else \
            "lost " + ", ".join(map(str, fig["lost_messages"]))
        return (f"| {label} | {fig['mean_cpu_percent']:g} ({', '.join(f'{v:g}' for v in fig['server_cpu_percent'])})"
                f" | {', '.join(f'{v:g}' for v in fig['relay_p99_ms'])} | {counts}"
                f" | {', '.join(f'{v:g}' for v in fig['pictures_per_s'])} |")

    return ["", f"**Live monitor** — one process, {mo['rooms']} two-player rooms at 30 inputs/s per seat, "
            f"{mo['seconds']:g} s windows, {mo['trials']} interleaved trials each; the monitor's cost is "
            f"**{mo['monitor_cpu_percent']:g} percentage points** of one core", "",
            "| | server CPU %, mean (trials) | relay p99 ms (trials) | inputs in the window (trials; refused: "
            "the bots' server_errors over the run) | pictures/s |",
            "|---|---:|---:|---|---:|",
            row("nobody watching (baseline)", mo["nobody_watching"]),
            row("an admin's monitor open", mo["admin_watching"])]


def _viewer_lines(vw: dict | None) -> list[str]:
    if not vw:
        return []
    snap, base = vw["viewer"], vw["baseline_no_snapshots"]
    lines = ["", f"**Replay viewer** — a recorded two-player `kitchen` room of {vw['frames']:,} frames, seeks "
             f"from the start and from the end alternately ({vw['seeks']} per figure, median; the page's own "
             "time from the control to the frame drawn, the BATCH's time in the worker in brackets)", "",
             f"| figure | viewer (snapshot every {snap['every']} frames) | baseline: replay from frame 0, "
             "no snapshots (`?every=0`) | target |", "|---|---:|---:|---|"]
    for target in vw["targets"]:
        what = "a keyframe: restore + draw" if target % snap["every"] == 0 else \
            f"{target % snap['every']} frames past a keyframe"
        lines.append(f"| seek to frame {target:,} ({what}), ms | {snap[str(target)]['seek_ms']['median']:g} "
                     f"({snap[str(target)]['worker_ms']['median']:g}) | {base[str(target)]['seek_ms']['median']:g} "
                     f"({base[str(target)]['worker_ms']['median']:g}) | |")
    lines += [f"| first pass when the viewer opens (every frame stepped, keyframes snapshotted), ms | "
              f"{snap['index_ms']:g} | {base['index_ms']:g} | |",
              f"| viewer page opened → ready, s | {snap['ready_s']:g} | {base['ready_s']:g} | |",
              f"| final state hash equals the room's | {'yes' if snap['hash_match'] else 'no'} | "
              f"{'yes' if base['hash_match'] else 'no'} | yes |"]
    return lines


def _replay_lines(rb: dict | None) -> list[str]:
    if not rb:
        return []
    st = rb["settings"]
    lines = ["", f"**Replays** — {st['quiet_rooms']} rooms playing at 30 inputs/s per seat while "
             f"{st['finishing_rooms']} other rooms finish within one second, each end replayed in CPython "
             f"({st['replay_frames']} frames of `kitchen`); the measuring clients and the finishing rooms' "
             "clients in two processes, nothing pinned (server, replay workers and clients share the "
             "cores); the median of the trials (interleaved), every trial's ratio beside it", "",
             "| replays run | relay one way p50 / p99 ms, no room finishing (inputs) | same, while the rooms "
             "finish (inputs) | p99 ratio (trials) | all results after (results) | target |",
             "|---|---:|---:|---:|---:|---|"]
    sides = [(side, label) for side, label in (
        ("pool", "process pool, 2 workers (default)"),
        ("thread", "thread of the server process (old way, `replay_workers = 0`)")) if side in rb]
    for side, label in sides:
        fig = rb[side]
        lines.append(f"| {label} | {fig['quiet_ms']['p50']:g} / {fig['quiet_ms']['p99']:g} "
                     f"({delivered(fig.get('quiet_delivery'))}) | "
                     f"{fig['burst_ms']['p50']:g} / {fig['burst_ms']['p99']:g} ({delivered(fig.get('burst_delivery'))})"
                     f" | {fig['p99_ratio']:g}× "
                     f"({', '.join(f'{r:g}' for r in fig.get('trial_ratios', [fig['p99_ratio']]))}) | "
                     f"{fig['all_results_within_s']} s ({delivered(fig.get('results_delivery'))}) | "
                     f"{'≤ 2×' if side == 'pool' else ''} |")
    totals = [(label, rb[side]["trials_delivery"]) for side, label in sides if "trials_delivery" in rb[side]]
    if totals:
        lines += ["", "| every trial, summed | inputs, no room finishing | inputs, while the rooms finish "
                  "| final hashes → room results |", "|---|---|---|---|"]
        lines += [f"| {label} | {delivered(t['quiet_delivery'])} | {delivered(t['burst_delivery'])} | "
                  f"{delivered(t['results_delivery'])} |" for label, t in totals]
    return lines


def update_readme(results: dict, readme: Path) -> None:
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1]
        readme.write_text(f"{head}{start}\n{markdown(results)}\n\n![benchmark](bench/results.png)\n{end}{tail}")


def _bars(ax, title, data):
    colors = ["#2a7de1" if k.startswith("worker") else "#e1702a" for k in data]
    bars = ax.bar(list(data), list(data.values()), color=colors)
    ax.bar_label(bars, fmt="%.2f" if max(data.values() or [0]) < 10 else "%.0f", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=7)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = results["figures"]
    mp = results.get("multiplayer")
    later = [results.get(k) for k in ("ingest", "scale", "fuzz")]
    frames = results.get("frames")
    rows = 1 + bool(mp) + any(later) + bool(frames)
    fig, axes = plt.subplots(rows, 4, figsize=(17, 4.2 * rows), squeeze=False)
    _bars(axes[0][0], "Pyodide ready (ms)", {m: f["pyodide_ready_ms"][m]["median"] for m in MODES})
    _bars(axes[0][1], "Longest main-thread stall\nduring init (ms)", {m: f["init_stall_ms"][m]["median"] for m in MODES})
    _bars(axes[0][2], "STEP round trip p50 / p99 (ms)",
          {f"{m}\n{q}": f["step_rtt_ms"][m][q] for q in ("p50", "p99") for m in MODES})
    _bars(axes[0][3], "8-step BATCH round trip p50 / p99 (ms)",
          {f"{m}\n{q}": f["batch8_rtt_ms"][m][q] for q in ("p50", "p99") for m in MODES})
    if mp:
        _bars(axes[1][0], "Rollback BATCH p50 by depth (ms), kitchen",
              {f"{m}\n{d} fr": mp["rollback_batch_ms"][d][m]["p50"] for d in ("1", "4", "8") for m in MODES})
        ax = axes[1][1]
        delays = list(mp["rollback_rate"])
        ax.bar(delays, [mp["rollback_rate"][d]["rollbacks_per_min"] for d in delays], color="#2a7de1")
        ax.set_title("Rollbacks / min by injected delay (ms)", fontsize=10)
        _bars(axes[1][2], "Relay one-way vs direct ack RTT (ms)", {
            "worker relay\np50": mp["relay"]["relay_one_way_ms"]["p50"],
            "worker relay\np99": mp["relay"]["relay_one_way_ms"]["p99"],
            "worker direct\np50": mp["relay"]["direct_ack_rtt_ms"]["p50"],
            "worker direct\np99": mp["relay"]["direct_ack_rtt_ms"]["p99"]})
        _bars(axes[1][3], "Disconnects while N rooms boot at once",
              {f"{m}\n{n} rooms": mp["concurrent_init"][n][m]["disconnects"] + 0.0
               for n in mp["concurrent_init"] for m in MODES})
    if any(later):
        _plot_data_and_scale(axes[1 + bool(mp)], *later)
    if frames:
        _plot_frames(axes[rows - 1], frames)
    if results.get("policies") and frames:
        axes[rows - 1][2].axis("on")
        axes[rows - 1][3].axis("on")
        _plot_policies(axes[rows - 1], results["policies"])
    fig.suptitle(f"Coplay benchmarks — {results['date']} — blue: worker (default), orange: ?worker=0")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _plot_frames(axes, frames: dict) -> None:
    sides = {"worker\nRGB": "rgb", "worker\nrects": "rects", "main\nRGB": "rgb_main_thread"}
    _bars(axes[0], f"{frames['frame']} frame: STEP sent → drawn\np50 / p99 (ms; target p99 ≤ 8)",
          {f"{label}\n{q}": frames[side]["total_ms"][q] for q in ("p50", "p99") for label, side in sides.items()})
    _bars(axes[1], f"Dropped frames at {frames['fps']} fps (of {frames['rgb']['frames']})",
          {label: frames[side]["dropped"] + 0.0 for label, side in sides.items()})
    for ax in axes[2:]:
        ax.axis("off")


def _plot_policies(axes, po: dict) -> None:
    _bars(axes[2], "AI decision p50 / p99 (ms)\nworker vs main thread (MUG-style)",
          {f"{model}\n{mode[:4]}\n{q}": po[model][mode]["decide_ms"][q]
           for model in ("mlp", "gru") for mode in MODES for q in ("p50", "p99")})
    _bars(axes[3], "Longest main-thread stall during play (ms)",
          {f"{model}\n{mode[:4]}": po[model][mode]["stall_ms"] for model in ("none", "mlp", "gru") for mode in MODES})


def _scale_series(scale: dict) -> dict[str, dict]:
    """Label -> levels, for the p99 plot."""
    if "processes" not in scale:
        return {label: scale.get(side) or {} for side, label in SCALE_SIDES.items() if side != "coplay_bare_bots"}
    series = {_setup_label(count): levels for count, levels in scale["processes"].items()}
    series[SCALE_SIDES["coplay_hypercorn"]] = scale.get("coplay_hypercorn") or {}
    series["Coplay, bare input bots"] = scale.get("coplay_bare_bots") or {}
    series["bare python-socketio relay, bare input bots"] = scale.get("baseline") or {}
    return series


def _plot_data_and_scale(axes, ingest: dict | None, scale: dict | None, fuzz: dict | None) -> None:
    if ingest:
        data = {"SQLite\nSocket.IO": ingest["socketio_max"]["records_per_s"],
                "SQLite\ndirect": ingest["direct_store_max"]["records_per_s"]}
        if "socketio_max_postgres" in ingest:
            data["Postgres\nSocket.IO"] = ingest["socketio_max_postgres"]["records_per_s"]
            data["Postgres\ndirect"] = ingest["direct_store_max_postgres"]["records_per_s"]
        _bars(axes[0], "Step records ingested per second\n(target 50,000 through Socket.IO)", data)
    if scale:
        ax = axes[1]
        for label, levels in _scale_series(scale).items():
            points = [(int(n), lv["relay_one_way_ms"]["p99"]) for n, lv in levels.items() if lv["relay_one_way_ms"]]
            if points:
                ax.plot(*zip(*sorted(points), strict=True), marker="o", label=label)
        ax.axhline(20, color="grey", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("two-player rooms at 30 Hz", fontsize=8)
        ax.set_title("Relay one-way p99 (ms, log) by rooms; dashed: 20 ms target", fontsize=10)
        ax.legend(fontsize=7)
        if "processes" in scale:  # summed over a setup's processes
            bars = {f"{count} proc\n{n} rooms": lv["server_cpu_ms_per_input"]
                    for count, levels in scale["processes"].items() for n, lv in levels.items()
                    if n in ("50", "100") and lv.get("server_cpu_ms_per_input")}
        else:
            bars = {f"{SCALE_SHORT[side]}\n{n} rooms": lv["server_cpu_ms_per_input"]
                    for side in ("coplay", "coplay_hypercorn", "baseline") for n, lv in (scale.get(side) or {}).items()
                    if n in ("50", "100")}
        _bars(axes[2], "Server CPU ms per relayed input", bars)
    if fuzz:
        lat = fuzz["relay_one_way_ms"]
        _bars(axes[3], f"Good room relay under fuzz (ms); crashes: {fuzz['crashes']}",
              {"quiet\np50": lat["quiet"]["p50"], "quiet\np99": lat["quiet"]["p99"],
               "attacked\np50": lat["attacked"]["p50"], "attacked\np99": lat["attacked"]["p99"]})
