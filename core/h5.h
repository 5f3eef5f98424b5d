// HDF5 files through a small RAII wrapper over the C API: files, groups, typed datasets and
// attributes, laid out so that h5py reads what qkv writes and qkv reads what h5py writes.
//
// Every failure is a qkv::Error that names the file and the object, e.g.
//   "runs/x.h5: not an HDF5 file", "ckpt.h5: missing dataset /model/head.weight".
// HDF5's own error-stack printing is switched off the first time a file is opened.
//
// Conventions (as h5py): strings are variable-length UTF-8, booleans are the enum {FALSE, TRUE}
// over int8, every file's groups and attributes remember their creation order (members() and
// attr_names() list in that order; in files that do not track it, in name order).
// The HDF5 library is built without thread safety: use it from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/index_tensor.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace qkv::h5 {

/// Element types as stored in a file. kBool is h5py's boolean (an int8 enum FALSE/TRUE).
enum class DType {
  kFloat32,
  kFloat64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
  kBool,
  kString,
  kOther,
};

/// A dataset's or attribute's element type and dimensions.
struct Info {
  DType dtype = DType::kOther;
  std::string dtype_name;     // "float32", "int64", "bool", "string", "float16", "compound", …
  std::vector<int64_t> dims;  // empty for a scalar
  int rank() const { return static_cast<int>(dims.size()); }
  int64_t numel() const;
  bool is_float() const;    // any floating-point width
  bool is_integer() const;  // any integer width, signed or not (not bool)
};

/// Dimensions printed like Shape: "[2, 3]", "[]" for a scalar.
std::string dims_str(const std::vector<int64_t>& dims);

/// What a name in a group refers to.
enum class Kind { kMissing, kGroup, kDataset, kOther };

/// A group inside an open file (the root group for File itself). Copies refer to the same group.
/// Names are relative to this group; "a/b" reaches into subgroups; a leading "/" starts at the
/// file's root. Names may contain dots ("blocks.0.attn.W_Q.weight").
class Group {
 public:
  /// The file's path, as given to File::create or File::open.
  const std::string& file_path() const;
  /// This group's absolute path inside the file ("/" for the root, "/model", …).
  const std::string& path() const;
  /// The absolute path of a member: where("x") in /model is "/model/x".
  std::string where(const std::string& name) const;

  // --- members ------------------------------------------------------------------------------

  /// True when the name leads to an object (every link on the way exists).
  bool exists(const std::string& name) const;
  Kind kind(const std::string& name) const;
  /// The names of this group's direct members, in creation order where the file tracks it.
  std::vector<std::string> members() const;
  /// Opens an existing subgroup; "missing group /x" or "/x is a dataset, not a group" otherwise.
  Group group(const std::string& name) const;
  /// Creates a subgroup (and any missing groups on the way); fails if the name exists.
  Group create_group(const std::string& name);

  // --- datasets -----------------------------------------------------------------------------

  /// Element type and dimensions of a dataset.
  Info info(const std::string& name) const;

  /// Writes a new dataset (float32, float64, int32, uint8 in the file; rank 0–4 as the shape).
  /// Missing groups on the way are created; fails if the name exists.
  void write(const std::string& name, const Tensor<float>& t);
  void write(const std::string& name, const Tensor<double>& t);
  void write(const std::string& name, const IndexTensor& t);
  void write(const std::string& name, const BoolTensor& t);
  /// A scalar float64 dataset.
  void write_scalar(const std::string& name, double value);
  /// A 1-D dataset of variable-length UTF-8 strings (h5py's string_dtype()).
  void write_strings(const std::string& name, const std::vector<std::string>& values);
  /// A uint64 dataset of the given shape (row-major values).
  void write_u64(const std::string& name, const Shape& shape, const std::vector<uint64_t>& values);

  /// Reads a float32 (T = float) or float64 (T = double) dataset of rank ≤ 4. With allow_cast,
  /// a dataset of any other floating-point width is converted; otherwise it is an error.
  template <typename T>
  Tensor<T> read(const std::string& name, bool allow_cast = false) const;
  /// Reads an integer dataset (any width; h5py's bool too) of rank ≤ 4; values must fit int32.
  IndexTensor read_index(const std::string& name) const;
  /// Reads a uint8 dataset (or bool, or any integer width with values in 0..255) of rank ≤ 4.
  BoolTensor read_bool(const std::string& name) const;
  /// Reads a one-element dataset (scalar or [1]) of any float or integer type as float64.
  double read_scalar(const std::string& name) const;
  /// Reads a 1-D (or scalar) dataset of strings, variable or fixed length.
  std::vector<std::string> read_strings(const std::string& name) const;
  /// Reads a 64-bit integer dataset bit for bit (uint64 or int64), or a narrower one with
  /// non-negative values; the shape goes to *shape when given.
  std::vector<uint64_t> read_u64(const std::string& name, Shape* shape = nullptr) const;

  // --- attributes of this group ---------------------------------------------------------------

  bool has_attr(const std::string& name) const;
  /// Attribute names, in creation order where the file tracks it, else in name order.
  std::vector<std::string> attr_names() const;
  Info attr_info(const std::string& name) const;

  /// Setters replace an attribute of the same name.
  void set_string_attr(const std::string& name, const std::string& value);  // vlen UTF-8
  void set_int_attr(const std::string& name, int64_t value);                // int64
  void set_float_attr(const std::string& name, double value);               // float64
  void set_bool_attr(const std::string& name, bool value);                  // h5py bool
  void set_ints_attr(const std::string& name, const std::vector<int64_t>& values);
  void set_floats_attr(const std::string& name, const std::vector<double>& values);

  /// A scalar (or one-element) string attribute, variable or fixed length (padding removed).
  std::string string_attr(const std::string& name) const;
  /// A one-element integer attribute (any width; h5py's bool reads as 0 or 1).
  int64_t int_attr(const std::string& name) const;
  /// A one-element float or integer attribute, as float64.
  double float_attr(const std::string& name) const;
  /// A one-element bool or integer attribute (non-zero is true).
  bool bool_attr(const std::string& name) const;
  /// A scalar or 1-D integer attribute.
  std::vector<int64_t> ints_attr(const std::string& name) const;
  /// A scalar or 1-D float or integer attribute, as float64.
  std::vector<double> floats_attr(const std::string& name) const;

  /// Reads every member and attribute below this group (each group once, `seen` holds their
  /// addresses) as qkv's loaders would, skipping datasets of more than max_bytes (which the
  /// loaders refuse unread); throws on what HDF5 cannot read. The check of a file without a
  /// checksum runs it in a child process.
  void read_everything(std::set<uint64_t>& seen, uint64_t max_bytes) const;

 protected:
  struct Impl;
  Group() = default;
  explicit Group(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  const Impl& impl() const;
  std::shared_ptr<Impl> impl_;
};

/// Bytes of the checksum header (an HDF5 user block) at the start of every file qkv writes.
constexpr size_t kHeaderBytes = 512;

/// The limits of the child process that reads a file without a qkv checksum before qkv opens it.
struct ProbeLimits {
  bool enabled = true;
  double seconds = 10;  // wall-clock time for opening and reading it all
  uint64_t memory_bytes = uint64_t{512}
                          << 20;  // address space beyond its own start, + 4 × file size
};
void set_probe_limits(const ProbeLimits& limits);
ProbeLimits probe_limits();

/// An open HDF5 file; as a Group it is the root group "/". Closing the file (close() or the
/// destructor) also closes every Group opened from it.
///
/// Files qkv writes carry a checksum of all their bytes in a 512-byte user block (h5py reads them
/// as usual). open() verifies it before HDF5 sees a byte: "x.h5: checksum mismatch: the file is
/// damaged …". A file without one (written by h5py) is first opened and read in full by a child
/// process under ProbeLimits; a crash, hang or memory blow-up there is one qkv::Error naming the
/// file, since HDF5 1.10 itself can crash or loop on damaged metadata.
class File : public Group {
 public:
  /// Creates (or truncates) a file for writing: "x/y.h5: cannot create (…)" on failure. The file
  /// is built in memory and written, with its checksum, by close() (or by the destructor when no
  /// exception is on its way; a file abandoned by an exception is removed).
  static File create(const std::string& path);
  /// Opens an existing file read-only: "x.h5: does not exist", "x.h5: not an HDF5 file", ….
  static File open(const std::string& path);

  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  /// Flushes HDF5's buffers (H5Fflush); a file being written reaches the disk only at close().
  void flush();
  /// Closes the file; a file being written is written out then ("x.h5: cannot write (No space
  /// left on device)" removes it). Afterwards the object is unusable.
  void close();
  bool is_open() const { return fid_ >= 0; }

 private:
  File(const std::string& path, int64_t fid, int fd, uint64_t file_size);
  void close_quietly() noexcept;

  std::string path_;
  int64_t fid_ = -1;   // hid_t
  int fd_ = -1;        // the file being written (-1: opened for reading)
  int unwinding_ = 0;  // std::uncaught_exceptions() when made
};

}  // namespace qkv::h5
