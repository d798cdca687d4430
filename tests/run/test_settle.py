"""When memory has settled: stopped falling, and not before the allocator could give pages back."""

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


def test_flat_memory_settles_after_the_window():
    rule = SettleRule()
    flat = samples([400.0] * 20)
    assert not rule.has_settled(flat, since=0.0, now=5.0)
    assert rule.has_settled(flat, since=0.0, now=6.5)


def test_falling_memory_has_not_settled():
    falling = samples([400.0 - 5 * s for s in range(20)])
    assert not SettleRule().has_settled(falling, since=0.0, now=12.0)


def test_jemalloc_decay_holds_off_settling_until_its_pages_could_go_back():
    # jemalloc: flat for seconds after the unload, then its 10 s decay returns the pages
    decaying = samples([430.0] * 9 + [400.0] * 11)
    rule = SettleRule()
    assert rule.has_settled(decaying, since=0.0, now=7.0)  # "stopped falling", too early
    delay = purge_delay_s("jemalloc", {})
    assert delay == 10.0
    assert not rule.has_settled(decaying, since=0.0, now=7.0, purge_delay_s=delay)
    assert not rule.has_settled(decaying, since=0.0, now=11.5, purge_delay_s=delay)  # fell
    assert rule.has_settled(decaying, since=0.0, now=15.5, purge_delay_s=delay)
    assert rule.current_level(decaying, now=15.5) == 400 * MIB


def test_purge_delay_reads_the_variants_malloc_conf():
    assert purge_delay_s("glibc", {"MALLOC_CONF": "dirty_decay_ms:5000"}) == 0.0
    assert purge_delay_s("jemalloc", {"MALLOC_CONF": "dirty_decay_ms:1000"}) == 1.0
    conf = "background_thread:true,dirty_decay_ms:2000,muzzy_decay_ms:3000"
    assert purge_delay_s("jemalloc", {"MALLOC_CONF": conf}) == 5.0
    assert purge_delay_s("jemalloc", {"MALLOC_CONF": "dirty_decay_ms:-1"}) == 0.0  # never
    assert purge_delay_s("jemalloc", {"MALLOC_CONF": "dirty_decay_ms:soon"}) == 10.0
