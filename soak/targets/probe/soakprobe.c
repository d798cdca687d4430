/* libsoakprobe.so: asks the process's own allocator what it holds (docs/contract.md#allocator-probe).
 *
 * Preloaded after the allocator (LD_PRELOAD=<allocator>:libsoakprobe.so). With
 * SOAK_PROBE_SOCKET set (%p: the pid), a thread of its own answers one JSON
 * line per command on that Unix socket:
 *   stats    the allocator's figures: in-use/free-held/mapped bytes, arenas, raw
 *   release  give free memory back to the OS (malloc_trim, purge, ...)
 *   decay    run the allocator's time-based purging now (jemalloc; a no-op elsewhere)
 * Allocator functions are looked up at run time (dlsym), so one source builds
 * anywhere (glibc < 2.33 has no mallinfo2) and serves whichever malloc won.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_LINE 256
#define NONE ((unsigned long long)-1) /* a figure the allocator does not give: null */
#define JE_ARENAS_ALL 4096           /* jemalloc's MALLCTL_ARENAS_ALL */

/* Our own mirrors of glibc's structs: glibc < 2.33 headers lack mallinfo2. */
struct mallinfo2_mirror {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
struct mallinfo_mirror {
    int arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
enum { ARENA, ORDBLKS, SMBLKS, HBLKS, HBLKHD, USMBLKS, FSMBLKS, UORDBLKS, FORDBLKS, KEEPCOST };
static const char *const MALLINFO_NAMES[] = {"arena",   "ordblks",  "smblks",  "hblks",
                                             "hblkhd",  "usmblks",  "fsmblks", "uordblks",
                                             "fordblks", "keepcost"};

static struct sockaddr_un addr;
static const char *allocator = "glibc";
static void *lib; /* the library that defines the process's malloc */

/* From that library only: dlsym(NULL) would be RTLD_DEFAULT, any library's symbol. */
static void *sym(const char *name)
{
    return lib ? dlsym(lib, name) : NULL;
}

/* ---- JSON, written with snprintf into a fixed buffer ---- */
struct out {
    char buf[2048];
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
    size_t room = sizeof o->buf - o->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n < room ? (size_t)n : room - 1;
}

static void put_num(struct out *o, const char *key, unsigned long long v)
{
    if (v == NONE)
        put(o, ", \"%s\": null", key);
    else
        put(o, ", \"%s\": %llu", key, v);
}

/* a - b, not below 0; null if either is */
static unsigned long long minus(unsigned long long a, unsigned long long b)
{
    return a == NONE || b == NONE ? NONE : a > b ? a - b : 0;
}

static void common(struct out *o, unsigned long long in_use, unsigned long long free_held,
                   unsigned long long mapped, unsigned long long arenas)
{
    put(o, "{\"pid\": %d, \"allocator\": \"%s\"", (int)getpid(), allocator);
    put_num(o, "in_use_bytes", in_use);
    put_num(o, "free_held_bytes", free_held);
    put_num(o, "mapped_bytes", mapped);
    put_num(o, "arenas", arenas);
}

/* ---- stats, one function per allocator ---- */
static void stats_glibc(struct out *o)
{
    struct mallinfo2_mirror (*mi2)(void) = (struct mallinfo2_mirror(*)(void))sym("mallinfo2");
    struct mallinfo_mirror (*mi)(void) = (struct mallinfo_mirror(*)(void))sym("mallinfo");
    int (*info)(int, FILE *) = (int (*)(int, FILE *))sym("malloc_info");
    size_t f[10];
    if (mi2) {
        struct mallinfo2_mirror m = mi2();
        memcpy(f, &m, sizeof f);
    } else if (mi) { /* ints that wrap past 2 GiB: read as unsigned, right up to 4 GiB */
        struct mallinfo_mirror m = mi();
        int v[10];
        memcpy(v, &m, sizeof v);
        for (int i = 0; i < 10; i++)
            f[i] = (unsigned)v[i];
    } else {
        common(o, NONE, NONE, NONE, NONE);
        return;
    }
    /* malloc_info's XML has one <heap nr="..."> per arena */
    unsigned long long arenas = NONE;
    char *xml = NULL;
    size_t size = 0;
    FILE *mem = info ? open_memstream(&xml, &size) : NULL;
    if (mem) {
        int rc = info(0, mem);
        if (fclose(mem) == 0 && rc == 0)
            for (const char *p = xml; (p = strstr(p, "<heap nr=")) != NULL; p++)
                arenas = arenas == NONE ? 1 : arenas + 1;
        free(xml);
    }
    /* uordblks: in use in the heaps; hblkhd: big blocks, mmapped one by one */
    common(o, f[UORDBLKS] + f[HBLKHD], f[FORDBLKS], f[ARENA] + f[HBLKHD], arenas);
    put(o, ", \"mallinfo\": \"%s\"", mi2 ? "mallinfo2" : "mallinfo");
    for (int i = 0; i < 10; i++)
        put(o, ", \"%s\": %zu", MALLINFO_NAMES[i], f[i]);
}

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);

static void stats_jemalloc(struct out *o)
{
    static const char *const names[] = {"stats.allocated", "stats.active",   "stats.resident",
                                        "stats.mapped",    "stats.retained", "stats.metadata"};
    mallctl_fn mallctl = (mallctl_fn)sym("mallctl");
    unsigned long long v[6], narenas = NONE;
    for (int i = 0; i < 6; i++)
        v[i] = NONE;
    if (mallctl) {
        uint64_t epoch = 1; /* the stats are a snapshot, refreshed by writing epoch */
        size_t len = sizeof epoch;
        mallctl("epoch", &epoch, &len, &epoch, len);
        for (int i = 0; i < 6; i++) {
            size_t x, xlen = sizeof x;
            if (mallctl(names[i], &x, &xlen, NULL, 0) == 0)
                v[i] = x;
        }
        unsigned n;
        size_t nlen = sizeof n;
        if (mallctl("arenas.narenas", &n, &nlen, NULL, 0) == 0)
            narenas = n;
    }
    common(o, v[0], minus(minus(v[2], v[0]), v[5]), v[3], narenas);
    for (int i = 0; i < 6; i++)
        put_num(o, names[i], v[i]);
    put_num(o, "arenas.narenas", narenas);
}

static void stats_tcmalloc(struct out *o)
{
    static const char *const names[] = {"generic.current_allocated_bytes", "generic.heap_size",
                                        "tcmalloc.pageheap_free_bytes",
                                        "tcmalloc.pageheap_unmapped_bytes"};
    int (*get)(const char *, size_t *) =
        (int (*)(const char *, size_t *))sym("MallocExtension_GetNumericProperty");
    unsigned long long v[4];
    for (int i = 0; i < 4; i++) {
        size_t x;
        v[i] = get && get(names[i], &x) ? x : NONE; /* returns true when it knows it */
    }
    /* free but held: the heap minus what was given back and what is in use */
    common(o, v[0], minus(minus(v[1], v[3]), v[0]), v[1], NONE);
    for (int i = 0; i < 4; i++)
        put_num(o, names[i], v[i]);
}

static void stats_mimalloc(struct out *o)
{
    void (*info)(size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *) =
        (void (*)(size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *,
                  size_t *))sym("mi_process_info");
    int (*version)(void) = (int (*)(void))sym("mi_version");
    /* No in-use figure: mimalloc 2.0 release builds keep no per-block stats
     * (MI_STAT 0) and mi_heap_visit_blocks sees one thread's heap only. */
    if (!info) {
        common(o, NONE, NONE, NONE, NONE);
        return;
    }
    size_t elapsed, user, sys, rss, peak_rss, commit, peak_commit, faults;
    info(&elapsed, &user, &sys, &rss, &peak_rss, &commit, &peak_commit, &faults);
    common(o, NONE, NONE, commit, NONE);
    put(o, ", \"current_rss\": %zu, \"peak_rss\": %zu, \"current_commit\": %zu", rss, peak_rss,
        commit);
    put(o, ", \"peak_commit\": %zu, \"page_faults\": %zu", peak_commit, faults);
    put_num(o, "mi_version", version ? (unsigned long long)version() : NONE);
}

/* ---- release ---- */
static void release(struct out *o)
{
    const char *called;
    long long result = 0;
    bool has_result = true;
    if (strcmp(allocator, "jemalloc") == 0) {
        mallctl_fn mallctl = (mallctl_fn)sym("mallctl");
        called = "arena.<all>.purge";
        char name[32];
        snprintf(name, sizeof name, "arena.%d.purge", JE_ARENAS_ALL);
        result = mallctl ? mallctl(name, NULL, NULL, NULL, 0) : -1;
    } else if (strcmp(allocator, "tcmalloc") == 0) {
        void (*fn)(void) = (void (*)(void))sym("MallocExtension_ReleaseFreeMemory");
        called = "MallocExtension_ReleaseFreeMemory()";
        has_result = false;
        if (fn)
            fn();
    } else if (strcmp(allocator, "mimalloc") == 0) {
        void (*fn)(bool) = (void (*)(bool))sym("mi_collect");
        called = "mi_collect(true)";
        has_result = false;
        if (fn)
            fn(true);
    } else {
        int (*fn)(size_t) = (int (*)(size_t))sym("malloc_trim");
        called = "malloc_trim(0)";
        result = fn ? fn(0) : -1;
    }
    put(o, "{\"pid\": %d, \"allocator\": \"%s\", \"called\": \"%s\"", (int)getpid(), allocator,
        called);
    if (has_result)
        put(o, ", \"result\": %lld", result);
    else
        put(o, ", \"result\": null");
}

/* ---- decay ----
 * jemalloc gives freed pages back over its decay time, but only when a thread's allocator
 * activity ticks its decay (about every 1000 events per thread and arena): at a soak's
 * request rate, spread over many server threads, pages can stay long past their decay
 * time. "decay" runs that purging now, as a tick would: only what the decay curve lets go
 * by this moment. The other allocators have no such lag: nothing to call. */
static void decay(struct out *o)
{
    const char *called = "none";
    long long result = 0;
    if (strcmp(allocator, "jemalloc") == 0) {
        mallctl_fn mallctl = (mallctl_fn)sym("mallctl");
        char name[32];
        snprintf(name, sizeof name, "arena.%d.decay", JE_ARENAS_ALL);
        called = "arena.<all>.decay";
        result = mallctl ? mallctl(name, NULL, NULL, NULL, 0) : -1;
    }
    put(o, "{\"pid\": %d, \"allocator\": \"%s\", \"called\": \"%s\", \"result\": %lld",
        (int)getpid(), allocator, called, result);
}

/* ---- the socket ---- */
static void answer(int fd, const char *line)
{
    struct out o = {.len = 0};
    if (strcmp(line, "stats") == 0) {
        if (strcmp(allocator, "jemalloc") == 0)
            stats_jemalloc(&o);
        else if (strcmp(allocator, "tcmalloc") == 0)
            stats_tcmalloc(&o);
        else if (strcmp(allocator, "mimalloc") == 0)
            stats_mimalloc(&o);
        else
            stats_glibc(&o);
    } else if (strcmp(line, "release") == 0) {
        release(&o);
    } else if (strcmp(line, "decay") == 0) {
        decay(&o);
    } else { /* echo the command, escaped so that any bytes give valid JSON */
        put(&o, "{\"error\": \"unknown command: ");
        for (const unsigned char *c = (const unsigned char *)line; *c; c++)
            put(&o, *c == '"' || *c == '\\' ? "\\%c" : *c < 0x20 || *c >= 0x7f ? "\\u%04x" : "%c",
                *c);
        put(&o, "\"");
    }
    put(&o, "}\n");
    for (size_t sent = 0; sent < o.len;) {
        /* MSG_NOSIGNAL: a client gone away must not raise SIGPIPE in the server */
        ssize_t n = send(fd, o.buf + sent, o.len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        sent += (size_t)n;
    }
}

/* Newline-terminated commands until EOF, an error or the receive timeout. */
static void serve(int fd)
{
    char line[MAX_LINE + 1];
    size_t len = 0;
    for (;;) {
        char buf[512];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                if (len > 0 && line[len - 1] == '\r')
                    len--;
                line[len] = '\0';
                if (len > 0)
                    answer(fd, line);
                len = 0;
            } else if (len < MAX_LINE) {
                line[len++] = buf[i];
            } else { /* longer than any command: answer once and hang up */
                answer(fd, "(a line over 256 bytes)");
                return;
            }
        }
    }
}

static void find_allocator(void)
{
    /* The first loaded object, in lookup order, that defines malloc itself. Not
     * dladdr(dlsym(RTLD_DEFAULT, "malloc")): in a non-PIE executable that takes
     * malloc's address (Debian's python3) that is the executable's PLT entry. */
    void *self = dlopen(NULL, RTLD_LAZY);
    struct link_map *map = NULL;
    if (!self || dlinfo(self, RTLD_DI_LINKMAP, &map) != 0)
        return;
    for (struct link_map *l = map; l; l = l->l_next) {
        if (!l->l_name || !*l->l_name)
            continue; /* the executable */
        void *h = dlopen(l->l_name, RTLD_NOLOAD | RTLD_LAZY);
        Dl_info where;
        void *fn = h ? dlsym(h, "malloc") : NULL;
        if (!fn || !dladdr(fn, &where) || !where.dli_fname || strcmp(where.dli_fname, l->l_name)) {
            if (h)
                dlclose(h);
            continue;
        }
        const char *name = strrchr(l->l_name, '/');
        name = name ? name + 1 : l->l_name;
        if (strstr(name, "jemalloc"))
            allocator = "jemalloc";
        else if (strstr(name, "tcmalloc"))
            allocator = "tcmalloc";
        else if (strstr(name, "mimalloc"))
            allocator = "mimalloc";
        lib = h;
        return;
    }
}

static void *probe_thread(void *arg)
{
    (void)arg;
    find_allocator();
    /* A socket left by an earlier image of this pid (before an exec) is stale. */
    unlink(addr.sun_path);
    int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(srv, 8) < 0) {
        fprintf(stderr, "soakprobe: cannot listen on %s: %s\n", addr.sun_path, strerror(errno));
        if (srv >= 0)
            close(srv);
        return NULL;
    }
    for (;;) {
        int fd = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED)
                usleep(100 * 1000); /* e.g. out of fds: try again, without spinning */
            continue;
        }
        struct timeval timeout = {.tv_sec = 5, .tv_usec = 0}; /* a stuck client */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        serve(fd);
        close(fd);
    }
}

__attribute__((constructor)) static void soakprobe_start(void)
{
    const char *template = getenv("SOAK_PROBE_SOCKET");
    if (!template || !*template)
        return;
    /* %p -> pid: each process that loads the probe (a wrapper, the server) has its own */
    char path[sizeof addr.sun_path + 16]; /* room for a pid past the limit */
    size_t len = 0;
    for (const char *c = template; *c && len < sizeof addr.sun_path; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            len += (size_t)snprintf(path + len, 16, "%d", (int)getpid());
            c++;
        } else {
            path[len++] = *c;
        }
    }
    if (len >= sizeof addr.sun_path) { /* no room for the NUL */
        fprintf(stderr, "soakprobe: cannot listen on %s: %s\n", template, strerror(ENAMETOOLONG));
        return;
    }
    memcpy(addr.sun_path, path, len);
    addr.sun_family = AF_UNIX;

    /* Create the thread with every signal blocked, so that the program's signal
     * handlers never run on it; then give the caller its mask back. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, probe_thread, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        fprintf(stderr, "soakprobe: cannot start its thread: %s\n", strerror(rc));
}
