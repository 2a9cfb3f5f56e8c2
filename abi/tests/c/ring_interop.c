/*
 * The C end of abi/tests/ring_xen_interop.rs: Xen's own io/ring.h macros
 * driving one end of a shared ring whose other end is abi::ring.
 *
 *   ring_interop layout                  print layout facts, one per line
 *   ring_interop front FILE N START      be the frontend for N requests
 *   ring_interop back  FILE N START      be the backend for N requests
 *
 * FILE is mapped MAP_SHARED by both processes: the ring page at offset 0,
 * a control page at 4096 (struct ctl). Notifications are simulated by
 * counters in the control page; an end sleeps (spins, yielding) only after
 * RING_FINAL_CHECK_FOR_* said there is no work, so a lost wakeup shows up as
 * a timeout. Both ends start their indices at START (to cross the 2^32 wrap).
 *
 * The request and response contents, and the checksums, must match the Rust
 * side's make_request/make_response exactly.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* io/ring.h leaves the barriers to its user. */
#define xen_mb() __sync_synchronize()
#define xen_rmb() __sync_synchronize()
#define xen_wmb() __sync_synchronize()
#include <xen/io/ring.h>

#define PAGE 4096
#define TIMEOUT_SECONDS 60

/* The interop ring: a 32-byte request, a 12-byte response. */
struct ring_test_request {
    uint64_t id;
    uint32_t seq;
    uint16_t op;
    uint16_t len;
    uint32_t data[3];
    uint32_t checksum;
};

struct ring_test_response {
    uint32_t seq;
    int32_t status;
    uint32_t checksum;
};

DEFINE_RING_TYPES(ringtest, struct ring_test_request, struct ring_test_response);

/* Layout-only rings: a union rounded up to its alignment, and a response
 * larger than the request. */
struct odd_request { uint8_t bytes[13]; };
struct odd_response { uint64_t value; };
DEFINE_RING_TYPES(oddtest, struct odd_request, struct odd_response);

struct small_request { uint32_t a, b; };
struct wide_response { uint32_t words[6]; };
DEFINE_RING_TYPES(widetest, struct small_request, struct wide_response);

/* The control page. Every field is accessed atomically by both sides. */
struct ctl {
    uint32_t front_ready; /* the frontend has initialised the ring */
    uint32_t to_back;     /* notifications sent to the backend */
    uint32_t to_front;    /* notifications sent to the frontend */
    uint32_t failed;      /* an end gave up */
};

static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static uint32_t request_checksum(const struct ring_test_request *r)
{
    uint32_t c = (uint32_t)r->id ^ (uint32_t)(r->id >> 32) ^ r->seq ^ ((uint32_t)r->op << 16 | r->len);
    for (int i = 0; i < 3; i++)
        c = mix32(c ^ r->data[i]);
    return c;
}

static struct ring_test_request make_request(uint32_t seq)
{
    struct ring_test_request r;
    memset(&r, 0, sizeof(r));
    r.id = (uint64_t)mix32(seq) << 32 | seq;
    r.seq = seq;
    r.op = (uint16_t)(seq % 7);
    r.len = (uint16_t)(seq * 3);
    for (uint32_t i = 0; i < 3; i++)
        r.data[i] = mix32(seq * 3 + i + 1);
    r.checksum = request_checksum(&r);
    return r;
}

static struct ring_test_response make_response(const struct ring_test_request *q)
{
    struct ring_test_response p;
    p.seq = q->seq;
    p.status = -(int32_t)(q->seq % 5);
    p.checksum = mix32(q->checksum ^ 0x5a5a5a5aU);
    return p;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void notify(uint32_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST);
}

/* Waits until *counter moves past `seen`; -1 on timeout or failure. */
static int wait_event(struct ctl *ctl, uint32_t *counter, uint32_t seen, const char *who)
{
    double deadline = now() + TIMEOUT_SECONDS;
    for (unsigned long i = 0;; i++) {
        if (__atomic_load_n(counter, __ATOMIC_SEQ_CST) != seen)
            return 0;
        if (__atomic_load_n(&ctl->failed, __ATOMIC_SEQ_CST)) {
            fprintf(stderr, "%s: the other end failed\n", who);
            return -1;
        }
        if (i % 64 == 63)
            sched_yield();
        if (i % 4096 == 0 && now() > deadline) {
            fprintf(stderr, "%s: timed out waiting for a notification (a lost wakeup?)\n", who);
            return -1;
        }
    }
}

static int fail(struct ctl *ctl)
{
    __atomic_store_n(&ctl->failed, 1, __ATOMIC_SEQ_CST);
    return 1;
}

static int run_front(ringtest_sring_t *s, struct ctl *ctl, uint32_t n, RING_IDX start)
{
    ringtest_front_ring_t f;
    uint32_t sent = 0, received = 0, notified = 0, waits = 0;

    SHARED_RING_INIT(s);
    s->req_prod = s->rsp_prod = start;
    s->req_event = s->rsp_event = start + 1;
    FRONT_RING_ATTACH(&f, s, start, PAGE);
    __atomic_store_n(&ctl->front_ready, 1, __ATOMIC_SEQ_CST);

    for (;;) {
        uint32_t seen = __atomic_load_n(&ctl->to_front, __ATOMIC_SEQ_CST);
        int do_notify;
        RING_IDX rp;

        while (sent < n && !RING_FULL(&f)) {
            *RING_GET_REQUEST(&f, f.req_prod_pvt) = make_request(sent);
            f.req_prod_pvt++;
            sent++;
        }
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&f, do_notify);
        if (do_notify) {
            notify(&ctl->to_back);
            notified++;
        }

        rp = f.sring->rsp_prod;
        xen_rmb();
        while (f.rsp_cons != rp) {
            struct ring_test_response got, want;
            struct ring_test_request q = make_request(received);
            RING_COPY_RESPONSE(&f, f.rsp_cons, &got);
            f.rsp_cons++;
            want = make_response(&q);
            if (memcmp(&got, &want, sizeof(got)) != 0) {
                fprintf(stderr, "C front: response %u is {seq %u status %d checksum %#x}, want {seq %u status %d checksum %#x}\n",
                        received, got.seq, got.status, got.checksum, want.seq, want.status, want.checksum);
                return fail(ctl);
            }
            received++;
        }
        if (received == n)
            break;
        if (sent < n && !RING_FULL(&f))
            continue;

        int more;
        RING_FINAL_CHECK_FOR_RESPONSES(&f, more);
        if (more)
            continue;
        waits++;
        if (wait_event(ctl, &ctl->to_front, seen, "C front"))
            return fail(ctl);
    }
    printf("C front: %u requests, %u responses, %u notifications sent, %u waits\n", sent, received, notified, waits);
    return 0;
}

static int run_back(ringtest_sring_t *s, struct ctl *ctl, uint32_t n, RING_IDX start)
{
    ringtest_back_ring_t b;
    uint32_t expect = 0, notified = 0, waits = 0;
    double deadline = now() + TIMEOUT_SECONDS;

    while (!__atomic_load_n(&ctl->front_ready, __ATOMIC_SEQ_CST)) {
        if (now() > deadline || __atomic_load_n(&ctl->failed, __ATOMIC_SEQ_CST)) {
            fprintf(stderr, "C back: the frontend never initialised the ring\n");
            return fail(ctl);
        }
        sched_yield();
    }
    BACK_RING_ATTACH(&b, s, start, PAGE);

    for (;;) {
        uint32_t seen = __atomic_load_n(&ctl->to_back, __ATOMIC_SEQ_CST);
        int do_notify, more;

        while (RING_HAS_UNCONSUMED_REQUESTS(&b)) {
            struct ring_test_request got, want = make_request(expect);
            xen_rmb();
            RING_COPY_REQUEST(&b, b.req_cons, &got);
            b.req_cons++;
            if (memcmp(&got, &want, sizeof(got)) != 0 || request_checksum(&got) != got.checksum) {
                fprintf(stderr, "C back: request %u is {seq %u checksum %#x}, want {seq %u checksum %#x}\n",
                        expect, got.seq, got.checksum, want.seq, want.checksum);
                return fail(ctl);
            }
            expect++;
            *RING_GET_RESPONSE(&b, b.rsp_prod_pvt) = make_response(&got);
            b.rsp_prod_pvt++;
        }
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&b, do_notify);
        if (do_notify) {
            notify(&ctl->to_front);
            notified++;
        }
        if (expect == n)
            break;
        RING_FINAL_CHECK_FOR_REQUESTS(&b, more);
        if (more)
            continue;
        waits++;
        if (wait_event(ctl, &ctl->to_back, seen, "C back"))
            return fail(ctl);
    }
    printf("C back: %u requests, %u notifications sent, %u waits\n", expect, notified, waits);
    return 0;
}

#define LAYOUT(name, req_t, rsp_t)                                                          \
    do {                                                                                    \
        static union { name##_sring_t s; unsigned char page[2 * PAGE]; } mem;               \
        name##_front_ring_t f;                                                              \
        FRONT_RING_INIT(&f, &mem.s, PAGE);                                                  \
        printf("layout %s req %zu %zu rsp %zu %zu entry %zu offset %zu size4096 %lu "     \
               "size8192 %lu slot_req5 %td slot_rsp_max %td\n",                             \
               #name, sizeof(req_t), _Alignof(req_t), sizeof(rsp_t), _Alignof(rsp_t),       \
               sizeof(union name##_sring_entry), offsetof(struct name##_sring, ring),       \
               (unsigned long)__CONST_RING_SIZE(name, PAGE),                                \
               (unsigned long)__CONST_RING_SIZE(name, 2 * PAGE),                            \
               (char *)RING_GET_REQUEST(&f, 5) - (char *)&mem.s,                            \
               (char *)RING_GET_RESPONSE(&f, 0xffffffffU) - (char *)&mem.s);                \
        if (RING_SIZE(&f) != __CONST_RING_SIZE(name, PAGE))                                 \
            return 1;                                                                       \
    } while (0)

static int layout(void)
{
    LAYOUT(ringtest, struct ring_test_request, struct ring_test_response);
    LAYOUT(oddtest, struct odd_request, struct odd_response);
    LAYOUT(widetest, struct small_request, struct wide_response);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "layout") == 0)
        return layout();
    if (argc != 5 || (strcmp(argv[1], "front") != 0 && strcmp(argv[1], "back") != 0)) {
        fprintf(stderr, "usage: %s layout | {front|back} FILE N START\n", argv[0]);
        return 2;
    }
    uint32_t n = (uint32_t)strtoul(argv[3], NULL, 0);
    RING_IDX start = (RING_IDX)strtoul(argv[4], NULL, 0);
    int fd = open(argv[2], O_RDWR);
    if (fd < 0) {
        perror(argv[2]);
        return 2;
    }
    void *map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    close(fd);
    ringtest_sring_t *s = map;
    struct ctl *ctl = (struct ctl *)((char *)map + PAGE);
    int rc = strcmp(argv[1], "front") == 0 ? run_front(s, ctl, n, start) : run_back(s, ctl, n, start);
    fflush(stdout);
    munmap(map, 2 * PAGE);
    return rc;
}
