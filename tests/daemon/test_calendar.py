#!/usr/bin/env python3
"""schedule = calendar through the real daemon: a run at its wall-clock time
(under libfaketime, the clock set to just before it), the zone and the
host's jitter in the due times, runs a long run covered skipped, catch_up
and its state file, and the config errors of the keys.

Run by meson (`meson test --suite daemon`) with EVTASKD set to the built
daemon. The next-run computation itself, across clock changes, is the unit
suite's (tests/test_calendar.c).
"""
import calendar
import datetime
import glob
import os
import shutil
import signal
import sys
import tempfile
import time
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_evtaskd as T  # noqa: E402  (the Daemon helper and its conventions)
import test_control as C  # noqa: E402  (a daemon with its control socket, evtaskctl)
import childenv  # noqa: E402  (on the path through T)

FAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))


def faketime_env(**keys):
    """The environment of a daemon under libfaketime; in a sanitizer build,
    ASan lets it come first among the preloaded libraries."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    return dict(os.environ, LD_PRELOAD=FAKETIME[0], FAKETIME_DONT_FAKE_MONOTONIC="1",
                ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0", **keys)


def calendar_task(name, when, command="true", **keys):
    return T.exec_task(name, command, schedule="calendar", on_calendar=when, **keys)


def utc(text):
    """'YYYY-MM-DD HH:MM:SS' in UTC, as seconds since the epoch."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


class Calendar(C.ControlTest):
    def tmpdir(self):
        d = tempfile.TemporaryDirectory(prefix="evtaskd-calendar-")
        self.addCleanup(d.cleanup)
        return d.name

    def stop(self, d):
        d.kill(signal.SIGTERM)
        self.assertEqual(d.finish(), 0)
        self.assert_clean_log(d)

    # ---- the wall clock ----

    @T.unittest.skipIf(childenv.EMULATED, "libfaketime is preloaded into host programs only")
    def test_a_run_at_its_time_under_faketime(self):
        if not FAKETIME:
            self.skipTest("libfaketime is not installed (Debian package faketime)")
        # The wall clock starts two seconds before the due time; the loop's
        # monotonic clock is left alone, as the daemon maps one to the other.
        env = faketime_env(FAKETIME="@2026-12-08 01:59:58", TZ="UTC")
        d = self.run_daemon(calendar_task("night", "*-*-* 02:00:00"), env=env)
        sched = d.event("scheduled", "night")
        self.assertEqual(sched["due"], utc("2026-12-08 02:00:00"), sched)
        self.assertIn("next run at 2026-12-08 02:00:00 +0000", sched["msg"])
        run = d.event("run", "night", timeout=15)
        self.assertTrue(run["ts"].startswith("2026-12-08T02:00:0"), run)
        # Two seconds on the real clock, not more, not less.
        self.assertGreaterEqual(run["mono_us"] - sched["mono_us"], 1_900_000)
        self.assertLess(run["mono_us"] - sched["mono_us"], 4_000_000)
        d.event("finished", "night")
        after = d.wait_for(lambda r: r["event"] == "scheduled" and r["task"] == "night" and r is not sched,
                           what="the next due time")
        self.assertEqual(after["due"], utc("2026-12-09 02:00:00"), after)
        self.stop(d)
        self.assertEqual(len(d.of("run", "night")), 1, "one run for one due time")

    @T.unittest.skipIf(childenv.EMULATED, "libfaketime is preloaded into host programs only")
    def test_a_jump_of_the_wall_clock_is_seen(self):
        if not FAKETIME:
            self.skipTest("libfaketime is not installed (Debian package faketime)")
        # The offset of the daemon's wall clock is read from a file at each
        # call: rewritten, the clock jumps, and the kernel knows nothing of
        # it (no timerfd is told): the wait's slice must see it.
        offset = os.path.join(self.tmpdir(), "offset")
        with open(offset, "w") as f:
            f.write("+0\n")
        due = (int(time.time()) + 3600) // 60 * 60 + 60
        when = time.strftime("%H:%M:%S", time.gmtime(due))
        env = faketime_env(FAKETIME_TIMESTAMP_FILE=offset, FAKETIME_NO_CACHE="1")
        d = self.run_daemon(calendar_task("later", f"*-*-* {when}", timezone="UTC"), env=env)
        sched = d.event("scheduled", "later")
        self.assertEqual(sched["due"], due, sched)
        with open(offset + ".new", "w") as f:
            f.write("+3720\n")
        os.rename(offset + ".new", offset)
        jumped = T.now_us()
        run = d.event("run", "later", timeout=20)
        self.assertLess(run["mono_us"] - jumped, 11_000_000, "seen within one slice of 10 s")
        self.stop(d)

    def test_run_now_keeps_the_due_time_and_status_shows_it(self):
        d = self.start(calendar_task("far", "2099-01-01 00:00", timezone="UTC"))
        first = d.event("scheduled", "far")
        self.assertEqual(first["due"], utc("2099-01-01 00:00:00"))
        self.assertEqual(self.tasks()["far"]["next_run"], "2099-01-01 00:00:00 +0000")
        code, out, err = self.ctl("status", "far")
        self.assertEqual(code, 0, err)
        self.assertIn("next run 2099-01-01 00:00:00 +0000", out)
        asked = T.now_us()
        code, out, err = self.ctl("run", "far")
        self.assertEqual(code, 0, err)
        run = d.event("run", "far")
        self.assertLess(run["mono_us"] - asked, 2_000_000, "the wait ends when asked, not at its slice's end")
        d.event("finished", "far")
        again = d.wait_for(lambda r: r["event"] == "scheduled" and r["task"] == "far" and r is not first,
                           what="the due time after the early run")
        self.assertEqual(again["due"], first["due"], "an early run leaves the due time")
        self.assertEqual(d.of("skipped", "far"), [])
        self.stop(d)

    def test_the_system_zone_is_read_again_at_reload(self):
        # TZ names a zone file of this test's: the system's zone, as far as
        # the daemon knows, and one it can change.
        zone = os.path.join(self.tmpdir(), "localtime")
        shutil.copyfile("/usr/share/zoneinfo/Asia/Kolkata", zone)
        d = self.run_daemon(calendar_task("midnight", "daily"), env=dict(os.environ, TZ=":" + zone))
        first = d.event("scheduled", "midnight")
        self.assertIn("+0530", first["msg"])
        shutil.copyfile("/usr/share/zoneinfo/America/New_York", zone + ".new")
        os.rename(zone + ".new", zone)
        d.kill(signal.SIGHUP)
        d.event("reloaded")
        again = d.wait_for(lambda r: r["event"] == "scheduled" and r["task"] == "midnight" and r is not first,
                           what="the due time in the new zone")
        local = datetime.datetime.fromtimestamp(again["due"], zoneinfo.ZoneInfo("America/New_York"))
        self.assertEqual((local.hour, local.minute, local.second), (0, 0, 0), again)
        self.assertRegex(again["msg"], r"-0[45]00")
        self.stop(d)
        self.assertEqual(d.of("run", "midnight"), [])

    def test_due_times_in_a_zone_with_the_hosts_jitter(self):
        conf = (calendar_task("kolkata", "daily", timezone="Asia/Kolkata")
                + calendar_task("spread", "Mon..Fri 02:00", timezone="UTC", jitter="1h"))
        seen = []
        for _ in range(2):
            d = self.run_daemon(conf)
            k = d.event("scheduled", "kolkata")
            s = d.event("scheduled", "spread")
            self.stop(d)
            seen.append(s["jitter_ms"])
            zone = zoneinfo.ZoneInfo("Asia/Kolkata")
            midnight = datetime.datetime.fromtimestamp(k["due"], zone)
            self.assertEqual((midnight.hour, midnight.minute, midnight.second), (0, 0, 0), k)
            self.assertLess(k["due"] - time.time(), 86400)
            self.assertIn("+0530", k["msg"])
            monday_to_friday = datetime.datetime.fromtimestamp(s["due"], datetime.timezone.utc)
            self.assertLess(monday_to_friday.weekday(), 5, s)
            self.assertEqual(monday_to_friday.hour, 2, s)
            self.assertTrue(0 <= s["jitter_ms"] < 3_600_000, s)
        self.assertEqual(seen[0], seen[1], "the host's offset is the same on every start")
        self.assertEqual(d.of("run"), [], "nothing was due")

    # ---- overlap ----

    def test_a_long_run_skips_the_due_times_it_covers(self):
        d = self.run_daemon(calendar_task("busy", "*:*:0/1", "sleep 2.5"))
        d.wait_for(lambda r: r["event"] == "run" and r["task"] == "busy" and r["run"] == 2, timeout=20,
                   what="the second run")
        self.stop(d)
        runs = d.of("run", "busy")
        ends = {r["run"]: r for r in d.of("finished", "busy")}
        self.assertIn(1, ends)
        skipped = [r for r in d.of("skipped", "busy") if r["run"] == 1]
        self.assertEqual(len(skipped), 1, "one record for the due times run 1 covered")
        self.assertGreaterEqual(skipped[0]["skipped"], 2, skipped)
        self.assertLessEqual(skipped[0]["skipped"], 3, skipped)
        self.assertGreaterEqual(runs[1]["mono_us"] - runs[0]["mono_us"], 2_500_000, "runs never overlap")

    # ---- catch_up ----

    def test_catch_up_once_runs_what_was_missed_once(self):
        state = self.tmpdir()
        path = os.path.join(state, "nightly.last-run")
        two_days_ago = int(time.time()) - 2 * 86400
        with open(path, "w") as f:
            f.write(f"{two_days_ago}\n")
        d = self.run_daemon(f"[daemon]\nstate_directory = {state}\n\n"
                            + calendar_task("nightly", "daily", timezone="UTC", catch_up="once"))
        caught = d.event("scheduled", "nightly")
        self.assertIn("catching up", caught["msg"])
        self.assertEqual(caught["last"], two_days_ago)
        d.event("finished", "nightly")
        nxt = d.wait_for(lambda r: r["event"] == "scheduled" and r["task"] == "nightly" and r is not caught,
                         what="the next due time")
        self.stop(d)
        self.assertEqual(len(d.of("run", "nightly")), 1, "two missed days, one run")
        self.assertEqual(d.of("skipped", "nightly"), [], "missed runs are not overlap")
        self.assertGreater(nxt["due"], time.time() - 5)
        with open(path) as f:
            kept = int(f.read())
        self.assertGreaterEqual(kept, int(time.time()) - 86400, "the state file has the run's due time")
        self.assertEqual(os.listdir(state), ["nightly.last-run"], "no temporary file left")

        # Started again: the run was made, nothing is owed.
        d = self.run_daemon(f"[daemon]\nstate_directory = {state}\n\n"
                            + calendar_task("nightly", "daily", timezone="UTC", catch_up="once"))
        s = d.event("scheduled", "nightly")
        self.assertNotIn("catching up", s["msg"])
        self.stop(d)
        self.assertEqual(d.of("run", "nightly"), [])

    def test_catch_up_none_waits_for_the_next_time(self):
        state = self.tmpdir()
        with open(os.path.join(state, "nightly.last-run"), "w") as f:
            f.write(f"{int(time.time()) - 2 * 86400}\n")
        d = self.run_daemon(f"[daemon]\nstate_directory = {state}\n\n"
                            + calendar_task("nightly", "daily", timezone="UTC"))
        s = d.event("scheduled", "nightly")
        self.assertNotIn("catching up", s["msg"])
        self.stop(d)
        self.assertEqual(d.of("run", "nightly"), [])

    def test_an_unusable_state_directory_is_a_warning(self):
        d = self.run_daemon("[daemon]\nstate_directory = /proc/no/such/place\n\n"
                            + calendar_task("nightly", "daily", catch_up="once"))
        w = d.event("failed", "nightly")
        self.assertEqual(w["level"], "warning")
        self.assertIn("state directory /proc/no/such/place", w["msg"])
        self.assertIn("missed runs will not be caught up", w["msg"])
        d.event("scheduled", "nightly")
        self.stop(d)

    def test_the_state_directory_from_systemd(self):
        state = self.tmpdir()
        env = dict(os.environ, STATE_DIRECTORY=f"{state}:/elsewhere")
        d = self.run_daemon(calendar_task("every", "*:*:0/1", catch_up="once"), env=env)
        d.event("finished", "every", timeout=15)
        self.stop(d)
        self.assertTrue(os.path.exists(os.path.join(state, "every.last-run")))

    # ---- config errors ----

    def test_config_errors(self):
        T.Config.check_bad(self, calendar_task("a", "Mon..Fri 25:00"), 5, "on_calendar",
                           "'25' in the hour column: 25 is out of range (0..23)")
        T.Config.check_bad(self, calendar_task("a", "daily", timezone="Mars/Olympus_Mons"), 6, "timezone",
                           "no time zone 'Mars/Olympus_Mons' in /usr/share/zoneinfo")
        T.Config.check_bad(self, T.exec_task("a", "true", schedule="calendar"), 4, "schedule",
                           "schedule = calendar needs an 'on_calendar' expression")


if __name__ == "__main__":
    T.unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
