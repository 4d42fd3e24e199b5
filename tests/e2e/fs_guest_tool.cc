// Guest side of fs_migration_e2e_test: holds a POSIX record lock (fcntl F_SETLK, which
// virtiofs with --posix-lock takes on the host) until killed.
//
//   fs_guest_tool lock PATH
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 3 || std::strcmp(argv[1], "lock") != 0) {
    std::fprintf(stderr, "usage: %s lock PATH\n", argv[0]);
    return 2;
  }
  const int fd = open(argv[2], O_RDWR | O_CREAT, 0644);
  if (fd < 0) {
    std::perror("open");
    return 1;
  }
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (fcntl(fd, F_SETLK, &fl) != 0) {
    std::perror("F_SETLK");
    return 1;
  }
  std::printf("E2E-RESULT locked=yes\n");
  std::fflush(stdout);
  for (;;) pause();  // the lock goes with the process
}
