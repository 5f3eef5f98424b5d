#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace qkv {
namespace {

std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

/// fsync of a file, or of a folder (some file systems cannot sync a folder: EINVAL is then as
/// durable as they allow).
void fsync_path(const std::string& path, bool folder) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (folder ? O_DIRECTORY : 0));
  if (fd < 0) fail("cannot open {} to sync it ({})", path, std::strerror(errno));
  const int r = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (r != 0 && !(folder && err == EINVAL)) fail("cannot sync {} ({})", path, std::strerror(err));
}

/// Writes every byte to a new file at `path` and closes it.
void write_bytes(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail("cannot create {} ({})", path, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      fail("writing {} failed ({})", path, std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) fail("writing {} failed ({})", path, std::strerror(errno));
}

}  // namespace

void replace_file_atomic(const std::string& path,
                         const std::function<void(const std::string& tmp_path)>& write) {
  const std::string tmp = path + ".tmp";
  try {
    struct stat st;
    const std::string folder = folder_of(path);
    if (::stat(folder.c_str(), &st) != 0) fail("its folder {} does not exist", folder);
    write(tmp);
    commit_file_atomic(tmp, path);
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    fail("cannot write {}: {}", path, e.what());
  }
}

void commit_file_atomic(const std::string& tmp, const std::string& path) {
  fsync_path(tmp, false);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    fail("cannot rename {} to {} ({})", tmp, path, std::strerror(errno));
  fsync_path(folder_of(path), true);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  replace_file_atomic(path, [&](const std::string& tmp) { write_bytes(tmp, bytes); });
}

}  // namespace qkv
