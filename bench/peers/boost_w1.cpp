// boost-w1: benchmark peer for bench/run, workload W1 only, with
// boost::context::fiber: 100 fibers, each yields 10,000 times back to a
// round-robin scheduler. One yield = resume the fiber + its switch back.
// See README.md beside this file.
//
//   boost-w1 W1 [N]    (N is accepted and ignored, like the other peers)
#include <boost/context/fiber.hpp>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

namespace ctx = boost::context;

static constexpr int tasks = 100;
static constexpr int yields = 10000;
static long count;

static long long now_ns() {
        timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
        if (argc < 2 || argc > 3 || std::strcmp(argv[1], "W1") != 0) { /* N is ignored */
                std::fprintf(stderr, "usage: boost-w1 W1 [N]\n");
                return 2;
        }
        std::vector<ctx::fiber> fibers;
        for (int i = 0; i < tasks; i++)
                fibers.emplace_back([](ctx::fiber &&scheduler) {
                        for (int j = 0; j < yields; j++) {
                                count++;
                                scheduler = std::move(scheduler).resume();
                        }
                        return std::move(scheduler);
                });

        long long start = now_ns();
        for (int live = tasks; live > 0;)
                for (auto &f : fibers)
                        if (f) {
                                f = std::move(f).resume();
                                if (!f)
                                        live--;
                        }
        long long elapsed = now_ns() - start;

        if (count != (long) tasks * yields) {
                std::fprintf(stderr, "boost-w1: %ld yields, want %d\n", count, tasks * yields);
                return 1;
        }
        std::printf("{\"impl\":\"boost\",\"workload\":\"W1\",\"metric\":\"ns_per_yield\",\"value\":%.2f}\n",
                    (double) elapsed / (tasks * yields));
        return 0;
}
