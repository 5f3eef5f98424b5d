// Replacing a file so that a reader never sees half of it: write NAME.tmp in the same folder,
// flush, fsync, rename over NAME, fsync the folder.
#pragma once

#include <functional>
#include <string>

namespace qkv {

/// Replaces `path` with `bytes` atomically. On any failure the .tmp file is removed, `path` is
/// left as it was, and qkv::Error reads "cannot write PATH: REASON" (never a std::filesystem
/// error).
void write_file_atomic(const std::string& path, const std::string& bytes);

/// Replaces `path` atomically with the file that `write(tmp_path)` creates and closes at
/// tmp_path = path + ".tmp" (an HDF5 file, say); then fsyncs it, renames it over `path` and
/// fsyncs the folder. Whatever `write` throws becomes the REASON of "cannot write PATH: REASON",
/// with the .tmp file removed.
void replace_file_atomic(const std::string& path,
                         const std::function<void(const std::string& tmp_path)>& write);

/// The last step of both: fsyncs the written `tmp`, renames it over `path` and fsyncs the folder.
/// Throws qkv::Error "cannot rename TMP to PATH (why)" (or "cannot sync …"); `tmp` stays for
/// the caller to remove.
void commit_file_atomic(const std::string& tmp, const std::string& path);

}  // namespace qkv
