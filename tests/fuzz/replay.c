/* Runs a fuzz target without libFuzzer: LLVMFuzzerTestOneInput on every
 * file in the directories given, in name order, each name printed first
 * (a failed property aborts, after it). Fails if a directory cannot be
 * read or none of them holds a file: a replay that runs nothing passes
 * nothing. Files whose names start with '.' are skipped. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

/* Reads a whole file into a buffer of exactly its size (so that a read past
 * the end is caught). 0 or -errno. */
static int read_file(const char *path, uint8_t **ret, size_t *ret_size) {
        struct stat st;
        uint8_t *buf = NULL;
        size_t done = 0;
        int fd, r = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EISDIR;
        else if (!(buf = malloc(st.st_size > 0 ? (size_t) st.st_size : 1)))
                r = -ENOMEM;
        while (r == 0 && done < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + done, (size_t) st.st_size - done);

                if (n < 0)
                        r = -errno;
                else if (n == 0)
                        r = -EIO; /* shrank while read */
                else
                        done += (size_t) n;
        }
        close(fd);
        if (r < 0) {
                free(buf);
                return r;
        }
        *ret = buf;
        *ret_size = done;
        return 0;
}

static int skip_hidden(const struct dirent *d) {
        return d->d_name[0] != '.';
}

/* Replays one directory; the number of files run, or -errno. */
static int replay_dir(const char *dir) {
        struct dirent **names;
        int n, done = 0, r = 0;

        n = scandir(dir, &names, skip_hidden, alphasort);
        if (n < 0) {
                r = -errno;
                fprintf(stderr, "%s: %s\n", dir, strerror(-r));
                return r;
        }
        for (int i = 0; i < n; i++) {
                char path[4096];
                uint8_t *data = NULL;
                size_t size = 0;

                snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
                if (r == 0) {
                        printf("%s\n", path);
                        fflush(stdout);
                        r = read_file(path, &data, &size);
                        if (r < 0) {
                                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                        } else {
                                LLVMFuzzerTestOneInput(data, size);
                                done++;
                        }
                        free(data);
                }
                free(names[i]);
        }
        free(names);
        return r < 0 ? r : done;
}

int main(int argc, char **argv) {
        int total = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s DIRECTORY...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                int n = replay_dir(argv[i]);

                if (n < 0)
                        return 1;
                total += n;
        }
        if (total == 0) {
                fprintf(stderr, "no inputs in the directories given\n");
                return 1;
        }
        printf("%d inputs, no failure\n", total);
        return 0;
}
