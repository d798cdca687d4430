"""When memory has settled: flat, or stopped falling; never before the allocator could purge."""

from soak.config.allocators import purge_delay_s
from soak.driver.settle import SettleRule
from soak.store.records import MIB


def samples(levels_by_second: list[float]) -> list[tuple[float, int]]:
    """10 samples a second at each second's level (MiB)."""
    return [
        (second + i / 10, int(level * MIB))
        for second, level in enumerate(levels_by_second)
        for i in range(10)
    ]


def test_flat_memory_settles_after_one_level_window():
    rule = SettleRule()
    flat = samples([400.0] * 20)
    assert not rule.has_settled(flat, since=0.0, now=0.9)
    assert rule.has_settled(flat, since=0.0, now=1.05)
    assert rule.current_level(flat, now=1.05) == 400 * MIB


def test_memory_that_is_not_flat_settles_when_it_has_not_fallen_over_the_window():
    # +-2 MiB of noise, no trend: not flat, so the slow rule (5 s window) decides
    noisy = [
        (t, v + (2 * MIB if i % 2 else -2 * MIB)) for i, (t, v) in enumerate(samples([400.0] * 20))
    ]
    rule = SettleRule()
    assert not rule.has_settled(noisy, since=0.0, now=3.0)
    assert not rule.has_settled(noisy, since=0.0, now=5.5)
    assert rule.has_settled(noisy, since=0.0, now=6.5)


def test_falling_memory_has_not_settled():
    falling = samples([400.0 - 5 * s for s in range(20)])
    assert not SettleRule().has_settled(falling, since=0.0, now=12.0)


def test_a_slow_fall_is_not_flat():
    # 0.5 MiB a second: within a 1 MiB tolerance over one second, but 2.5 MiB over the
    # slow rule's 5 s; flat means a fall the slow rule would let pass (1.2 MiB per 5 s here)
    trickle = [(t, int((400.0 - 0.5 * t) * MIB)) for t, _ in samples([0.0] * 20)]
    rule = SettleRule()
    assert not rule.has_settled(trickle, since=0.0, now=2.0)
    assert not rule.has_settled(trickle, since=0.0, now=12.0)


def test_jemalloc_decay_holds_off_settling_until_its_pages_could_go_back():
    # jemalloc: flat for seconds after the unload, then its 10 s decay returns the pages
    decaying = samples([430.0] * 9 + [400.0] * 11)
    rule = SettleRule()
    assert rule.has_settled(decaying, since=0.0, now=7.0)  # flat, too early
    delay = purge_delay_s("jemalloc", {})
    assert delay == 10.0
    assert not rule.has_settled(decaying, since=0.0, now=7.0, purge_delay_s=delay)
    assert not rule.has_settled(decaying, since=0.0, now=10.9, purge_delay_s=delay)
    assert rule.has_settled(decaying, since=0.0, now=11.05, purge_delay_s=delay)
    assert rule.current_level(decaying, now=11.05) == 400 * MIB


def test_purge_delay_reads_the_variants_malloc_conf():
    assert purge_delay_s("glibc", {"MALLOC_CONF": "dirty_decay_ms:5000"}) == 0.0
    assert purge_delay_s("jemalloc", {"MALLOC_CONF": "dirty_decay_ms:1000"}) == 1.0
    conf = "background_thread:true,dirty_decay_ms:2000,muzzy_decay_ms:3000"
    assert purge_delay_s("jemalloc", {"MALLOC_CONF": conf}) == 5.0
    assert purge_delay_s("jemalloc", {"MALLOC_CONF": "dirty_decay_ms:-1"}) == 0.0  # never
    assert purge_delay_s("jemalloc", {"MALLOC_CONF": "dirty_decay_ms:soon"}) == 10.0
