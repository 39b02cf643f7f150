/* The process's own metrics, as the Prometheus client libraries name them
 * (process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds, process_start_time_seconds), from /proc. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http.h"

void evd_metrics_write_process(FILE *f) {
        long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
        unsigned long long utime = 0, stime = 0, start = 0, btime = 0;
        long long rss = 0;
        size_t fds = 0;
        char line[256];
        FILE *p;
        DIR *dir;

        if ((p = fopen("/proc/self/stat", "re"))) {
                /* After "(comm)", which may hold spaces: fields 3 on. */
                char buf[1024], *s = fgets(buf, sizeof(buf), p) ? strrchr(buf, ')') : NULL;

                if (s && sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                                       "%*d %llu %*u %lld",
                                &utime, &stime, &start, &rss) != 4)
                        utime = stime = start = 0;
                fclose(p);
        }
        if ((p = fopen("/proc/stat", "re"))) {
                while (fgets(line, sizeof(line), p))
                        if (sscanf(line, "btime %llu", &btime) == 1)
                                break;
                fclose(p);
        }
        if ((dir = opendir("/proc/self/fd"))) {
                for (struct dirent *e; (e = readdir(dir));)
                        fds += e->d_name[0] != '.';
                closedir(dir);
                fds--; /* the directory's own */
        }
        evd_metrics_family(f, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        fprintf(f, "process_cpu_seconds_total %.2f\n", (double) (utime + stime) / (double) tick);
        evd_metrics_family(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        fprintf(f, "process_resident_memory_bytes %lld\n", rss * page);
        evd_metrics_family(f, "process_open_fds", "gauge", "Number of open file descriptors.");
        fprintf(f, "process_open_fds %zu\n", fds);
        evd_metrics_family(f, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
        fprintf(f, "process_start_time_seconds %.2f\n", (double) btime + (double) start / (double) tick);
}
