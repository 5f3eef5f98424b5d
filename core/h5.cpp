#include "core/h5.h"

#include <fcntl.h>
#include <hdf5.h>
#include <malloc.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <new>
#include <set>
#include <type_traits>
#include <utility>

#include "core/checksum.h"
#include "core/error.h"
#include "core/pool.h"

static_assert(std::is_same_v<hid_t, int64_t>, "core/h5.h stores hid_t as int64_t (HDF5 ≥ 1.10)");

namespace qkv::h5 {
namespace {

// ---- HDF5 plumbing --------------------------------------------------------------------------

/// Switches off HDF5's printing of its error stack (every failure becomes a qkv::Error instead).
void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] {
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

/// What HDF5 said about the last failure, outermost and innermost description, then clears it.
std::string hdf5_detail() {
  struct Walk {
    std::string outer, inner;
  } w;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
        auto* w = static_cast<Walk*>(data);
        if (e->desc && *e->desc) {
          if (n == 0) w->outer = e->desc;
          w->inner = e->desc;
        }
        return 0;
      },
      &w);
  H5Eclear2(H5E_DEFAULT);
  if (w.outer.empty() && w.inner.empty()) return "HDF5 gave no reason";
  if (w.outer == w.inner || w.inner.empty()) return "HDF5: " + w.outer;
  if (w.outer.empty()) return "HDF5: " + w.inner;
  return "HDF5: " + w.outer + ": " + w.inner;
}

/// One HDF5 identifier and the function that closes it.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  bool ok() const { return id_ >= 0; }
  hid_t get() const { return id_; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

Handle type_handle(hid_t id) {
  return Handle(id, H5Tclose);
}
Handle space_handle(hid_t id) {
  return Handle(id, H5Sclose);
}
Handle plist_handle(hid_t id) {
  return Handle(id, H5Pclose);
}

/// A property list for creating links (datasets, groups, attributes): UTF-8 names, as h5py,
/// and missing groups on the way created.
Handle link_create_plist() {
  Handle p = plist_handle(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(p.get(), 1);
  H5Pset_char_encoding(p.get(), H5T_CSET_UTF8);
  return p;
}

/// Groups (and the root, through the file-creation list) remember link and attribute order.
void track_creation_order(hid_t plist) {
  H5Pset_link_creation_order(plist, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  H5Pset_attr_creation_order(plist, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
}

/// The variable-length string type h5py writes for str: vlen, UTF-8.
Handle vlen_string_type(H5T_cset_t cset = H5T_CSET_UTF8) {
  Handle t = type_handle(H5Tcopy(H5T_C_S1));
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), cset);
  return t;
}

/// h5py's bool: an enum over int8 with members FALSE = 0 and TRUE = 1.
Handle bool_type() {
  Handle t = type_handle(H5Tenum_create(H5T_NATIVE_INT8));
  int8_t f = 0, tr = 1;
  H5Tenum_insert(t.get(), "FALSE", &f);
  H5Tenum_insert(t.get(), "TRUE", &tr);
  return t;
}

bool is_h5py_bool(hid_t type) {
  if (H5Tget_class(type) != H5T_ENUM || H5Tget_size(type) != 1 || H5Tget_nmembers(type) != 2)
    return false;
  bool ok = true;
  const char* expected[2] = {"FALSE", "TRUE"};
  for (unsigned i = 0; i < 2; ++i) {
    char* name = H5Tget_member_name(type, i);
    ok = ok && name && std::strcmp(name, expected[i]) == 0;
    if (name) H5free_memory(name);
  }
  return ok;
}

Info describe(hid_t type, hid_t space) {
  Info info;
  size_t size = H5Tget_size(type);
  std::string bits = std::to_string(size * 8);
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      info.dtype = size == 4 ? DType::kFloat32 : size == 8 ? DType::kFloat64 : DType::kOther;
      info.dtype_name = "float" + bits;
      break;
    case H5T_INTEGER: {
      bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
      info.dtype_name = (is_signed ? "int" : "uint") + bits;
      static const DType s[] = {DType::kInt8, DType::kInt16, DType::kInt32, DType::kInt64};
      static const DType u[] = {DType::kUInt8, DType::kUInt16, DType::kUInt32, DType::kUInt64};
      int k = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : size == 8 ? 3 : -1;
      info.dtype = k < 0 ? DType::kOther : is_signed ? s[k] : u[k];
      break;
    }
    case H5T_ENUM:
      info.dtype = is_h5py_bool(type) ? DType::kBool : DType::kOther;
      info.dtype_name = info.dtype == DType::kBool ? "bool" : "enum";
      break;
    case H5T_STRING:
      info.dtype = DType::kString;
      info.dtype_name = "string";
      break;
    case H5T_COMPOUND:
      info.dtype_name = "compound";
      break;
    case H5T_ARRAY:
      info.dtype_name = "array";
      break;
    case H5T_VLEN:
      info.dtype_name = "vlen sequence";
      break;
    case H5T_REFERENCE:
      info.dtype_name = "reference";
      break;
    case H5T_OPAQUE:
      info.dtype_name = "opaque";
      break;
    case H5T_BITFIELD:
      info.dtype_name = "bitfield";
      break;
    default:
      info.dtype_name = "unknown";
      break;
  }
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd > 0) {
    std::vector<hsize_t> dims(static_cast<size_t>(nd));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    for (hsize_t d : dims) info.dims.push_back(static_cast<int64_t>(d));
  }
  return info;
}

Handle make_space(const Shape& shape) {
  if (shape.nd == 0) return space_handle(H5Screate(H5S_SCALAR));
  hsize_t dims[kMaxDims];
  for (int i = 0; i < shape.nd; ++i) dims[i] = static_cast<hsize_t>(shape[i]);
  return space_handle(H5Screate_simple(shape.nd, dims, nullptr));
}

/// Splits "a/b/c" into its non-empty parts.
std::vector<std::string> split_path(const std::string& name) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string::npos) j = name.size();
    if (j > i) parts.push_back(name.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

/// True when every link on the way to name exists (H5Lexists checks only the last one).
bool link_exists(hid_t loc, const std::string& name) {
  std::string prefix = !name.empty() && name[0] == '/' ? "/" : "";
  for (const std::string& part : split_path(name)) {
    prefix += part;
    htri_t r = H5Lexists(loc, prefix.c_str(), H5P_DEFAULT);
    if (r <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    prefix += '/';
  }
  return true;
}

template <typename T>
hid_t native_type();
template <>
hid_t native_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t native_type<double>() {
  return H5T_NATIVE_DOUBLE;
}

std::string errno_text(int err) {
  return err ? std::strerror(err) : "unknown reason";
}

/// The most bytes one read may allocate: the machine's physical memory, or the address-space limit
/// (setrlimit) when that is lower.
uint64_t memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  uint64_t limit = pages > 0 && page > 0
                       ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page)
                       : uint64_t{1} << 40;
  rlimit r{};
  if (::getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY)
    limit = std::min<uint64_t>(limit, r.rlim_cur);
  return limit;
}

/// n elements of elem bytes, in GiB rounded up ("4096").
std::string gib(uint64_t n, size_t elem) {
  const long double bytes = static_cast<long double>(n) * static_cast<long double>(elem);
  return fmt::format("{:.0f}", std::ceil(bytes / (1024.0L * 1024.0L * 1024.0L)));
}

}  // namespace

// ---- Info -------------------------------------------------------------------------------------

int64_t Info::numel() const {
  int64_t n = 1;
  for (int64_t d : dims)
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      fail("dimensions {} hold more elements than a 64-bit count can", dims_str(dims));
  return n;
}
bool Info::is_float() const {
  return dtype_name.rfind("float", 0) == 0;
}
bool Info::is_integer() const {
  return dtype_name.rfind("int", 0) == 0 || dtype_name.rfind("uint", 0) == 0;
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// ---- Group --------------------------------------------------------------------------------------

struct Group::Impl {
  std::shared_ptr<const std::string> file;  // the path, for messages
  std::string path;                         // absolute path inside the file
  hid_t id = -1;
  bool writable = false;
  uint64_t file_size = 0;  // bytes on disk of a file opened for reading (0 = being written)
  ~Impl() {
    if (id >= 0) H5Gclose(id);
  }
};

namespace {

/// Everything a Group method needs: the group's id and how to name things in messages.
struct Loc {
  const std::string& file;
  const std::string& path;
  hid_t id;
  bool writable;
  uint64_t file_size;

  /// "dataset /model/x" or "attribute 'step' on /train", for messages.
  std::string dataset(const std::string& name) const { return "dataset " + where(name); }
  std::string attribute(const std::string& name) const {
    return "attribute '" + name + "' on " + path;
  }

  /// describe() of an object read from the file, with dimensions whose element count fits int64
  /// (a damaged dataspace can claim 2^64 - 1 elements).
  Info described(hid_t type, hid_t space, const std::string& what) const {
    Info info = describe(type, space);
    try {
      info.numel();
    } catch (const Error& e) {
      fail("{}: {} is damaged: its {}", file, what, e.what());
    }
    return info;
  }

  /// The element count of `info`, once it is known that `elem` bytes each fit in this machine's
  /// memory: "x.h5: dataset /model/w of shape [1099511627776] needs 4096 GiB; this machine has
  /// 16 GiB". Checked before anything is allocated. Strings (`per_file_byte`) are also checked
  /// against the file's size: each one takes at least a byte of the file.
  size_t reserve(const Info& info, size_t elem, const std::string& what,
                 bool per_file_byte = false) const {
    const auto n = static_cast<uint64_t>(info.numel());
    uint64_t bytes = 0;
    const uint64_t limit = memory_limit();
    if (__builtin_mul_overflow(n, elem, &bytes) || bytes > limit)
      fail(
          "{}: {} of shape {} needs {} GiB; this machine has {} GiB of memory (the file is "
          "damaged or was not written for qkv)",
          file, what, dims_str(info.dims), gib(n, elem), limit >> 30);
    if (per_file_byte && file_size > 0 && n > file_size)
      fail("{}: {} claims {} strings, more than the file's {} bytes can hold (the file is damaged)",
           file, what, n, file_size);
    return static_cast<size_t>(n);
  }

  std::string where(const std::string& name) const {
    if (!name.empty() && name[0] == '/') return name;
    if (name.empty() || name == ".") return path;
    return path == "/" ? "/" + name : path + "/" + name;
  }
  [[noreturn]] void fail_hdf5(const std::string& what, const std::string& name) const {
    fail("{}: cannot {} {} ({})", file, what, where(name), hdf5_detail());
  }
  void require_writable(const std::string& name) const {
    if (!writable) fail("{}: cannot write {}: the file is open read-only", file, where(name));
  }

  Kind kind(const std::string& name) const {
    if (!link_exists(id, name)) return Kind::kMissing;
    // An external link would open another file (anything on the machine): never followed.
    H5L_info_t link;
    if (H5Lget_info(id, name.c_str(), &link, H5P_DEFAULT) < 0) {
      H5Eclear2(H5E_DEFAULT);
      return Kind::kMissing;
    }
    if (link.type != H5L_TYPE_HARD && link.type != H5L_TYPE_SOFT) return Kind::kOther;
    hid_t obj = H5Oopen(id, name.c_str(), H5P_DEFAULT);
    if (obj < 0) {
      H5Eclear2(H5E_DEFAULT);
      return Kind::kMissing;  // a dangling soft or external link
    }
    H5I_type_t t = H5Iget_type(obj);
    H5Oclose(obj);
    return t == H5I_GROUP ? Kind::kGroup : t == H5I_DATASET ? Kind::kDataset : Kind::kOther;
  }

  Handle open_dataset(const std::string& name) const {
    switch (kind(name)) {
      case Kind::kMissing:
        fail("{}: missing dataset {}", file, where(name));
      case Kind::kGroup:
        fail("{}: {} is a group, not a dataset", file, where(name));
      case Kind::kOther:
        fail("{}: {} is not a dataset", file, where(name));
      case Kind::kDataset:
        break;
    }
    Handle d(H5Dopen2(id, name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!d.ok()) fail_hdf5("open dataset", name);
    return d;
  }

  Info dataset_info(const Handle& d, const std::string& name) const {
    Handle t = type_handle(H5Dget_type(d.get()));
    Handle s = space_handle(H5Dget_space(d.get()));
    if (!t.ok() || !s.ok()) fail_hdf5("read the type of dataset", name);
    return described(t.get(), s.get(), dataset(name));
  }

  Shape shape_of(const Info& info, const std::string& name) const {
    if (info.rank() > kMaxDims)
      fail("{}: dataset {} has {} dimensions; qkv tensors have at most {}", file, where(name),
           info.rank(), kMaxDims);
    return Shape::of(info.dims.data(), info.rank());
  }

  void read_raw(const Handle& d, hid_t mem_type, void* buf, const std::string& name) const {
    if (H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
      fail_hdf5("read dataset", name);
  }

  /// Any integer or bool dataset's values as int64 (uint64 values above the int64 range fail).
  std::vector<int64_t> read_integers(const Handle& d, const Info& info,
                                     const std::string& name) const {
    std::vector<int64_t> out(reserve(info, 2 * sizeof(int64_t), dataset(name)));
    if (out.empty()) return out;
    if (info.dtype == DType::kBool) {
      std::vector<int8_t> raw(out.size());
      Handle mem = bool_type();
      read_raw(d, mem.get(), raw.data(), name);
      for (size_t i = 0; i < raw.size(); ++i) out[i] = raw[i];
    } else if (info.dtype == DType::kUInt64) {
      std::vector<uint64_t> raw(out.size());
      read_raw(d, H5T_NATIVE_UINT64, raw.data(), name);
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          fail("{}: dataset {} holds {} at index {}, too large for an integer tensor", file,
               where(name), raw[i], i);
        out[i] = static_cast<int64_t>(raw[i]);
      }
    } else if (info.is_integer() && info.dtype != DType::kOther) {
      read_raw(d, H5T_NATIVE_INT64, out.data(), name);
    } else {
      fail("{}: dataset {} has dtype {}; expected integers", file, where(name), info.dtype_name);
    }
    return out;
  }

  /// Reads integers of any width into I, checking the range [lo, hi].
  template <typename I>
  IntegralTensor<I> read_integral(const std::string& name, DType native, hid_t native_type,
                                  int64_t lo, int64_t hi, const char* want) const {
    Handle d = open_dataset(name);
    Info info = dataset_info(d, name);
    if (info.dtype != native && info.dtype != DType::kBool && !info.is_integer())
      fail("{}: dataset {} has dtype {}; expected {}", file, where(name), info.dtype_name, want);
    reserve(info, info.dtype == native ? sizeof(I) : sizeof(I) + 2 * sizeof(int64_t),
            dataset(name));
    IntegralTensor<I> t(shape_of(info, name));
    if (t.data.empty()) return t;
    if (info.dtype == native) {
      read_raw(d, native_type, t.data.data(), name);
      return t;
    }
    std::vector<int64_t> v = read_integers(d, info, name);
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] < lo || v[i] > hi)
        fail("{}: dataset {} holds {} at index {}, outside the {} range", file, where(name), v[i],
             i, want);
      t.data[i] = static_cast<I>(v[i]);
    }
    return t;
  }

  Handle open_attr(const std::string& name) const {
    htri_t r = H5Aexists(id, name.c_str());
    if (r <= 0) {
      H5Eclear2(H5E_DEFAULT);
      fail("{}: missing attribute '{}' on {}", file, name, path);
    }
    Handle a(H5Aopen(id, name.c_str(), H5P_DEFAULT), H5Aclose);
    if (!a.ok()) fail("{}: cannot open attribute '{}' on {} ({})", file, name, path, hdf5_detail());
    return a;
  }
  Info attr_info(const Handle& a, const std::string& name) const {
    Handle t = type_handle(H5Aget_type(a.get()));
    Handle s = space_handle(H5Aget_space(a.get()));
    if (!t.ok() || !s.ok())
      fail("{}: cannot read the type of {} ({})", file, attribute(name), hdf5_detail());
    return described(t.get(), s.get(), attribute(name));
  }
  [[noreturn]] void fail_attr_type(const std::string& name, const Info& info,
                                   const char* want) const {
    fail("{}: attribute '{}' on {} is {} {}; expected {}", file, name, path, info.dtype_name,
         dims_str(info.dims), want);
  }
  void read_attr(const Handle& a, hid_t mem_type, void* buf, const std::string& name) const {
    if (H5Aread(a.get(), mem_type, buf) < 0)
      fail("{}: cannot read attribute '{}' on {} ({})", file, name, path, hdf5_detail());
  }

  /// Creates (replacing any old one) and writes an attribute.
  void write_attr(const std::string& name, hid_t file_type, const Handle& space, hid_t mem_type,
                  const void* buf) const {
    require_writable(path);
    if (H5Aexists(id, name.c_str()) > 0 && H5Adelete(id, name.c_str()) < 0)
      fail("{}: cannot replace attribute '{}' on {} ({})", file, name, path, hdf5_detail());
    Handle acpl = plist_handle(H5Pcreate(H5P_ATTRIBUTE_CREATE));
    H5Pset_char_encoding(acpl.get(), H5T_CSET_UTF8);
    Handle a(H5Acreate2(id, name.c_str(), file_type, space.get(), acpl.get(), H5P_DEFAULT),
             H5Aclose);
    if (!a.ok() || H5Awrite(a.get(), mem_type, buf) < 0)
      fail("{}: cannot write attribute '{}' on {} ({})", file, name, path, hdf5_detail());
  }

  /// Creates and writes a dataset; fails if the name exists.
  void write_dataset(const std::string& name, hid_t file_type, hid_t mem_type, const Shape& shape,
                     const void* buf) const {
    require_writable(name);
    if (link_exists(id, name)) fail("{}: cannot write {}: it already exists", file, where(name));
    Handle space = make_space(shape);
    Handle lcpl = link_create_plist();
    Handle d(
        H5Dcreate2(id, name.c_str(), file_type, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT),
        H5Dclose);
    if (!d.ok()) fail_hdf5("create dataset", name);
    if (shape.numel() > 0 && H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
      fail_hdf5("write dataset", name);
  }
};

bool tracks_order(hid_t group, bool attrs) {
  Handle pl = plist_handle(H5Gget_create_plist(group));
  unsigned flags = 0;
  herr_t r = attrs ? H5Pget_attr_creation_order(pl.get(), &flags)
                   : H5Pget_link_creation_order(pl.get(), &flags);
  if (r < 0) H5Eclear2(H5E_DEFAULT);
  return r >= 0 && (flags & H5P_CRT_ORDER_TRACKED);
}

}  // namespace

const Group::Impl& Group::impl() const {
  if (!impl_) fail("h5: use of a closed file");
  return *impl_;
}

#define QKV_LOC()                                       \
  const Impl& im = impl();                              \
  const Loc loc {                                       \
    *im.file, im.path, im.id, im.writable, im.file_size \
  }

const std::string& Group::file_path() const {
  return *impl().file;
}
const std::string& Group::path() const {
  return impl().path;
}
std::string Group::where(const std::string& name) const {
  QKV_LOC();
  return loc.where(name);
}

bool Group::exists(const std::string& name) const {
  return kind(name) != Kind::kMissing;
}

Kind Group::kind(const std::string& name) const {
  QKV_LOC();
  return loc.kind(name);
}

std::vector<std::string> Group::members() const {
  QKV_LOC();
  H5G_info_t gi;
  if (H5Gget_info(loc.id, &gi) < 0) loc.fail_hdf5("list group", ".");
  H5_index_t index = tracks_order(loc.id, false) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  std::vector<std::string> names;
  for (hsize_t i = 0; i < gi.nlinks; ++i) {
    ssize_t n = H5Lget_name_by_idx(loc.id, ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) loc.fail_hdf5("list group", ".");
    std::string name(static_cast<size_t>(n) + 1, '\0');
    H5Lget_name_by_idx(loc.id, ".", index, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
    name.resize(static_cast<size_t>(n));
    names.push_back(std::move(name));
  }
  return names;
}

Group Group::group(const std::string& name) const {
  QKV_LOC();
  switch (loc.kind(name)) {
    case Kind::kMissing:
      fail("{}: missing group {}", loc.file, loc.where(name));
    case Kind::kDataset:
      fail("{}: {} is a dataset, not a group", loc.file, loc.where(name));
    case Kind::kOther:
      fail("{}: {} is not a group", loc.file, loc.where(name));
    case Kind::kGroup:
      break;
  }
  auto g = std::make_shared<Impl>();
  g->file = im.file;
  g->path = loc.where(name);
  g->writable = im.writable;
  g->id = H5Gopen2(loc.id, name.c_str(), H5P_DEFAULT);
  if (g->id < 0) loc.fail_hdf5("open group", name);
  return Group(std::move(g));
}

Group Group::create_group(const std::string& name) {
  QKV_LOC();
  loc.require_writable(name);
  if (loc.kind(name) != Kind::kMissing)
    fail("{}: cannot create group {}: it already exists", loc.file, loc.where(name));
  Handle lcpl = link_create_plist();
  Handle gcpl = plist_handle(H5Pcreate(H5P_GROUP_CREATE));
  track_creation_order(gcpl.get());
  auto g = std::make_shared<Impl>();
  g->file = im.file;
  g->path = loc.where(name);
  g->writable = true;
  g->id = H5Gcreate2(loc.id, name.c_str(), lcpl.get(), gcpl.get(), H5P_DEFAULT);
  if (g->id < 0) loc.fail_hdf5("create group", name);
  return Group(std::move(g));
}

// ---- datasets -----------------------------------------------------------------------------------

Info Group::info(const std::string& name) const {
  QKV_LOC();
  Handle d = loc.open_dataset(name);
  return loc.dataset_info(d, name);
}

void Group::write(const std::string& name, const Tensor<float>& t) {
  QKV_LOC();
  if (!t.defined()) fail("{}: cannot write {}: the tensor is undefined", loc.file, loc.where(name));
  loc.write_dataset(name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t.shape(), t.data());
}

void Group::write(const std::string& name, const Tensor<double>& t) {
  QKV_LOC();
  if (!t.defined()) fail("{}: cannot write {}: the tensor is undefined", loc.file, loc.where(name));
  loc.write_dataset(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, t.shape(), t.data());
}

void Group::write(const std::string& name, const IndexTensor& t) {
  QKV_LOC();
  if (t.numel() != t.shape.numel())
    fail("{}: cannot write {}: {} values for shape {}", loc.file, loc.where(name), t.numel(),
         t.shape);
  loc.write_dataset(name, H5T_STD_I32LE, H5T_NATIVE_INT32, t.shape, t.data.data());
}

void Group::write(const std::string& name, const BoolTensor& t) {
  QKV_LOC();
  if (t.numel() != t.shape.numel())
    fail("{}: cannot write {}: {} values for shape {}", loc.file, loc.where(name), t.numel(),
         t.shape);
  loc.write_dataset(name, H5T_STD_U8LE, H5T_NATIVE_UINT8, t.shape, t.data.data());
}

void Group::write_scalar(const std::string& name, double value) {
  QKV_LOC();
  loc.write_dataset(name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, Shape{}, &value);
}

void Group::write_strings(const std::string& name, const std::vector<std::string>& values) {
  QKV_LOC();
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const std::string& s : values) ptrs.push_back(s.c_str());
  Handle t = vlen_string_type();
  loc.write_dataset(name, t.get(), t.get(), Shape{static_cast<int64_t>(values.size())},
                    ptrs.data());
}

void Group::write_u64(const std::string& name, const Shape& shape,
                      const std::vector<uint64_t>& values) {
  QKV_LOC();
  if (static_cast<int64_t>(values.size()) != shape.numel())
    fail("{}: cannot write {}: {} values for shape {}", loc.file, loc.where(name), values.size(),
         shape);
  loc.write_dataset(name, H5T_STD_U64LE, H5T_NATIVE_UINT64, shape, values.data());
}

template <typename T>
Tensor<T> Group::read(const std::string& name, bool allow_cast) const {
  QKV_LOC();
  constexpr DType want = std::is_same_v<T, float> ? DType::kFloat32 : DType::kFloat64;
  const char* want_name = std::is_same_v<T, float> ? "float32" : "float64";
  Handle d = loc.open_dataset(name);
  Info info = loc.dataset_info(d, name);
  if (info.dtype != want && !(allow_cast && info.is_float()))
    fail("{}: dataset {} has dtype {}; expected {}", loc.file, loc.where(name), info.dtype_name,
         want_name);
  loc.reserve(info, info.dtype == want ? sizeof(T) : sizeof(T) + sizeof(double), loc.dataset(name));
  Tensor<T> t = Tensor<T>::empty(loc.shape_of(info, name));
  if (t.numel() == 0) return t;
  if (info.dtype == want) {
    loc.read_raw(d, native_type<T>(), t.data(), name);
  } else {
    std::vector<double> v(static_cast<size_t>(t.numel()));
    loc.read_raw(d, H5T_NATIVE_DOUBLE, v.data(), name);
    for (size_t i = 0; i < v.size(); ++i) t.data()[i] = static_cast<T>(v[i]);
  }
  return t;
}
template Tensor<float> Group::read<float>(const std::string&, bool) const;
template Tensor<double> Group::read<double>(const std::string&, bool) const;

IndexTensor Group::read_index(const std::string& name) const {
  QKV_LOC();
  return loc.read_integral<int32_t>(name, DType::kInt32, H5T_NATIVE_INT32,
                                    std::numeric_limits<int32_t>::min(),
                                    std::numeric_limits<int32_t>::max(), "int32");
}

BoolTensor Group::read_bool(const std::string& name) const {
  QKV_LOC();
  return loc.read_integral<uint8_t>(name, DType::kUInt8, H5T_NATIVE_UINT8, 0, 255, "uint8");
}

double Group::read_scalar(const std::string& name) const {
  QKV_LOC();
  Handle d = loc.open_dataset(name);
  Info info = loc.dataset_info(d, name);
  if (!info.is_float() && !info.is_integer())
    fail("{}: dataset {} has dtype {}; expected a number", loc.file, loc.where(name),
         info.dtype_name);
  if (info.numel() != 1)
    fail("{}: dataset {} has shape {}; expected a single number", loc.file, loc.where(name),
         dims_str(info.dims));
  double v = 0;
  loc.read_raw(d, H5T_NATIVE_DOUBLE, &v, name);
  return v;
}

std::vector<std::string> Group::read_strings(const std::string& name) const {
  QKV_LOC();
  Handle d = loc.open_dataset(name);
  Handle type = type_handle(H5Dget_type(d.get()));
  Handle space = space_handle(H5Dget_space(d.get()));
  if (!type.ok() || !space.ok()) loc.fail_hdf5("read the type of dataset", name);
  Info info = loc.described(type.get(), space.get(), loc.dataset(name));
  if (info.dtype != DType::kString || info.rank() > 1)
    fail("{}: dataset {} is {} {}; expected a 1-D array of strings", loc.file, loc.where(name),
         info.dtype_name, dims_str(info.dims));
  const bool variable = H5Tis_variable_str(type.get()) > 0;
  const size_t width = variable ? sizeof(char*) : H5Tget_size(type.get());
  // The element count comes from the file: checked before a pointer array is made for it.
  size_t n = loc.reserve(info, width + sizeof(std::string), loc.dataset(name), variable);
  std::vector<std::string> out;
  out.reserve(n);
  if (n == 0) return out;
  if (variable) {
    Handle mem = vlen_string_type(H5Tget_cset(type.get()));
    std::vector<char*> ptrs(n, nullptr);
    loc.read_raw(d, mem.get(), ptrs.data(), name);
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
  } else {
    bool space_pad = H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD;
    Handle mem = type_handle(H5Tcopy(type.get()));
    std::vector<char> buf(n * width);
    loc.read_raw(d, mem.get(), buf.data(), name);
    for (size_t i = 0; i < n; ++i) {
      std::string s(buf.data() + i * width, width);
      s.resize(std::strlen(s.c_str()));  // null-terminated or null-padded
      if (space_pad) s.erase(s.find_last_not_of(' ') + 1);
      out.push_back(std::move(s));
    }
  }
  return out;
}

std::vector<uint64_t> Group::read_u64(const std::string& name, Shape* shape) const {
  QKV_LOC();
  Handle d = loc.open_dataset(name);
  Info info = loc.dataset_info(d, name);
  Shape s = loc.shape_of(info, name);
  if (shape) *shape = s;
  std::vector<uint64_t> out(loc.reserve(info, 2 * sizeof(uint64_t), loc.dataset(name)));
  if (out.empty()) {
    if (!info.is_integer())
      fail("{}: dataset {} has dtype {}; expected uint64", loc.file, loc.where(name),
           info.dtype_name);
    return out;
  }
  if (info.dtype == DType::kUInt64) {
    loc.read_raw(d, H5T_NATIVE_UINT64, out.data(), name);
  } else if (info.dtype == DType::kInt64) {  // the same 64 bits, as numpy's int64 view holds them
    std::vector<int64_t> v(out.size());
    loc.read_raw(d, H5T_NATIVE_INT64, v.data(), name);
    std::memcpy(out.data(), v.data(), v.size() * sizeof(uint64_t));
  } else {
    if (!info.is_integer())
      fail("{}: dataset {} has dtype {}; expected uint64", loc.file, loc.where(name),
           info.dtype_name);
    std::vector<int64_t> v = loc.read_integers(d, info, name);
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] < 0)
        fail("{}: dataset {} holds {} at index {}; expected unsigned values", loc.file,
             loc.where(name), v[i], i);
      out[i] = static_cast<uint64_t>(v[i]);
    }
  }
  return out;
}

// ---- attributes ---------------------------------------------------------------------------------

bool Group::has_attr(const std::string& name) const {
  QKV_LOC();
  htri_t r = H5Aexists(loc.id, name.c_str());
  if (r < 0) H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

std::vector<std::string> Group::attr_names() const {
  QKV_LOC();
  std::vector<std::string> names;
  H5_index_t index = tracks_order(loc.id, true) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  herr_t r = H5Aiterate2(
      loc.id, index, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->emplace_back(name);
        return 0;
      },
      &names);
  if (r < 0) fail("{}: cannot list the attributes of {} ({})", loc.file, loc.path, hdf5_detail());
  return names;
}

Info Group::attr_info(const std::string& name) const {
  QKV_LOC();
  Handle a = loc.open_attr(name);
  return loc.attr_info(a, name);
}

void Group::set_string_attr(const std::string& name, const std::string& value) {
  QKV_LOC();
  Handle t = vlen_string_type();
  Handle s = space_handle(H5Screate(H5S_SCALAR));
  const char* p = value.c_str();
  loc.write_attr(name, t.get(), s, t.get(), &p);
}

void Group::set_int_attr(const std::string& name, int64_t value) {
  QKV_LOC();
  Handle s = space_handle(H5Screate(H5S_SCALAR));
  loc.write_attr(name, H5T_STD_I64LE, s, H5T_NATIVE_INT64, &value);
}

void Group::set_float_attr(const std::string& name, double value) {
  QKV_LOC();
  Handle s = space_handle(H5Screate(H5S_SCALAR));
  loc.write_attr(name, H5T_IEEE_F64LE, s, H5T_NATIVE_DOUBLE, &value);
}

void Group::set_bool_attr(const std::string& name, bool value) {
  QKV_LOC();
  Handle t = bool_type();
  Handle s = space_handle(H5Screate(H5S_SCALAR));
  int8_t v = value ? 1 : 0;
  loc.write_attr(name, t.get(), s, t.get(), &v);
}

void Group::set_ints_attr(const std::string& name, const std::vector<int64_t>& values) {
  QKV_LOC();
  Handle s = make_space(Shape{static_cast<int64_t>(values.size())});
  loc.write_attr(name, H5T_STD_I64LE, s, H5T_NATIVE_INT64, values.data());
}

void Group::set_floats_attr(const std::string& name, const std::vector<double>& values) {
  QKV_LOC();
  Handle s = make_space(Shape{static_cast<int64_t>(values.size())});
  loc.write_attr(name, H5T_IEEE_F64LE, s, H5T_NATIVE_DOUBLE, values.data());
}

std::string Group::string_attr(const std::string& name) const {
  QKV_LOC();
  Handle a = loc.open_attr(name);
  Handle type = type_handle(H5Aget_type(a.get()));
  Handle space = space_handle(H5Aget_space(a.get()));
  if (!type.ok() || !space.ok())
    fail("{}: cannot read the type of {} ({})", loc.file, loc.attribute(name), hdf5_detail());
  Info info = loc.described(type.get(), space.get(), loc.attribute(name));
  if (info.dtype != DType::kString || info.numel() != 1) loc.fail_attr_type(name, info, "a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem = vlen_string_type(H5Tget_cset(type.get()));
    char* p = nullptr;
    loc.read_attr(a, mem.get(), &p, name);
    std::string s = p ? p : "";
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, &p);
    return s;
  }
  size_t width = H5Tget_size(type.get());
  loc.reserve(info, width, loc.attribute(name));
  bool space_pad = H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD;
  Handle mem = type_handle(H5Tcopy(type.get()));
  std::string s(width, '\0');
  loc.read_attr(a, mem.get(), s.data(), name);
  s.resize(std::strlen(s.c_str()));
  if (space_pad) s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

int64_t Group::int_attr(const std::string& name) const {
  std::vector<int64_t> v = ints_attr(name);
  if (v.size() != 1) {
    QKV_LOC();
    loc.fail_attr_type(name, attr_info(name), "one integer");
  }
  return v[0];
}

double Group::float_attr(const std::string& name) const {
  std::vector<double> v = floats_attr(name);
  if (v.size() != 1) {
    QKV_LOC();
    loc.fail_attr_type(name, attr_info(name), "one number");
  }
  return v[0];
}

bool Group::bool_attr(const std::string& name) const {
  QKV_LOC();
  Handle a = loc.open_attr(name);
  Info info = loc.attr_info(a, name);
  if ((info.dtype != DType::kBool && !info.is_integer()) || info.numel() != 1)
    loc.fail_attr_type(name, info, "a bool");
  return int_attr(name) != 0;
}

std::vector<int64_t> Group::ints_attr(const std::string& name) const {
  QKV_LOC();
  Handle a = loc.open_attr(name);
  Info info = loc.attr_info(a, name);
  if ((info.dtype != DType::kBool && !info.is_integer()) || info.rank() > 1)
    loc.fail_attr_type(name, info, "integers");
  std::vector<int64_t> out(loc.reserve(info, 2 * sizeof(int64_t), loc.attribute(name)));
  if (out.empty()) return out;
  if (info.dtype == DType::kBool) {
    std::vector<int8_t> raw(out.size());
    Handle mem = bool_type();
    loc.read_attr(a, mem.get(), raw.data(), name);
    for (size_t i = 0; i < raw.size(); ++i) out[i] = raw[i];
  } else {
    loc.read_attr(a, H5T_NATIVE_INT64, out.data(), name);
  }
  return out;
}

std::vector<double> Group::floats_attr(const std::string& name) const {
  QKV_LOC();
  Handle a = loc.open_attr(name);
  Info info = loc.attr_info(a, name);
  if ((!info.is_float() && !info.is_integer()) || info.rank() > 1)
    loc.fail_attr_type(name, info, "numbers");
  std::vector<double> out(loc.reserve(info, sizeof(double), loc.attribute(name)));
  if (!out.empty()) loc.read_attr(a, H5T_NATIVE_DOUBLE, out.data(), name);
  return out;
}

#undef QKV_LOC

// ---- the checksum header and the probe of unchecked files
// -----------------------------------------

namespace {

// Every file qkv writes starts with a kHeaderBytes-long HDF5 user block, which HDF5 and h5py skip:
//   0   "QKV-CHECKSUM-V1\n"    16 bytes of magic
//   16  uint32 version (1), uint32 header size (512)
//   24  uint64 content bytes: the file's size minus the header
//   32  uint64 XXH64 of the whole file, these 8 bytes read as zeros
//   40  one line of text for a person looking at the bytes, then zeros
// Numbers are little-endian. A file whose header verifies is opened from memory, from the very
// bytes that were checked.
constexpr char kMagic[] = "QKV-CHECKSUM-V1\n";
constexpr size_t kMagicBytes = sizeof(kMagic) - 1;
constexpr uint32_t kHeaderVersion = 1;
constexpr size_t kHashAt = 32;
constexpr char kHeaderNote[] =
    "This HDF5 file starts with qkv's checksum of its bytes; HDF5 and h5py read it as usual.\n";
static_assert(kMagicBytes == 16 && 40 + sizeof(kHeaderNote) <= kHeaderBytes);

void put_le(unsigned char* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint64_t get_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

/// XXH64 of the file's bytes with the hash field read as zeros.
uint64_t file_hash(std::vector<unsigned char>& bytes) {
  unsigned char saved[8];
  std::memcpy(saved, bytes.data() + kHashAt, 8);
  std::memset(bytes.data() + kHashAt, 0, 8);
  const uint64_t h = xxh64(bytes.data(), bytes.size());
  std::memcpy(bytes.data() + kHashAt, saved, 8);
  return h;
}

/// Fills the header of bytes (its first kHeaderBytes, then the HDF5 image).
void seal(std::vector<unsigned char>& bytes) {
  unsigned char* h = bytes.data();
  std::memset(h, 0, kHeaderBytes);
  std::memcpy(h, kMagic, kMagicBytes);
  put_le(h + 16, kHeaderVersion, 4);
  put_le(h + 20, kHeaderBytes, 4);
  put_le(h + 24, bytes.size() - kHeaderBytes, 8);
  std::memcpy(h + 40, kHeaderNote, sizeof(kHeaderNote) - 1);
  put_le(h + kHashAt, file_hash(bytes), 8);
}

bool has_header(const std::vector<unsigned char>& bytes) {
  return bytes.size() >= kHeaderBytes && std::memcmp(bytes.data(), kMagic, kMagicBytes) == 0;
}

/// A header whose magic was damaged: most of the magic, or the version and size fields, intact.
/// Such a file was written by qkv and is damaged; it must not pass as an unchecked file.
bool has_damaged_header(const std::vector<unsigned char>& bytes) {
  if (bytes.size() < kHeaderBytes) return false;
  int same = 0;
  for (size_t i = 0; i < kMagicBytes; ++i)
    same += bytes[i] == static_cast<unsigned char>(kMagic[i]);
  return same >= 8 || (get_le(bytes.data() + 16, 4) == kHeaderVersion &&
                       get_le(bytes.data() + 20, 4) == kHeaderBytes);
}

/// Throws one qkv::Error naming the file unless its header matches its bytes.
void verify(const std::string& path, std::vector<unsigned char>& bytes) {
  const unsigned char* h = bytes.data();
  const uint64_t version = get_le(h + 16, 4), size = get_le(h + 20, 4), content = get_le(h + 24, 8);
  if (version != kHeaderVersion || size != kHeaderBytes)
    fail(
        "{}: the file is damaged (its checksum header has version {} and size {}; this qkv "
        "writes version {} and size {})",
        path, version, size, kHeaderVersion, kHeaderBytes);
  if (content != bytes.size() - kHeaderBytes)
    fail(
        "{}: the file is damaged: it is {} bytes long, its checksum header says {} (truncated "
        "or extended)",
        path, bytes.size(), content + kHeaderBytes);
  if (get_le(h + kHashAt, 8) != file_hash(bytes))
    fail("{}: checksum mismatch: the file is damaged (restore it from a copy or use another one)",
         path);
}

/// Up to `max` bytes from the start of a file (all of it for max = SIZE_MAX).
std::vector<unsigned char> read_bytes(const std::string& path, uint64_t size, size_t max) {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(size, max));
  std::vector<unsigned char> bytes(n);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open ({})", path, errno_text(errno));
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, bytes.data() + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : 0;
      ::close(fd);
      fail("{}: cannot read ({})", path, r < 0 ? errno_text(err) : "the file shrank while read");
    }
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  return bytes;
}

/// Writes every byte to fd; "" or the reason it could not.
std::string write_bytes(int fd, const std::vector<unsigned char>& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t r = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_text(errno);
    done += static_cast<size_t>(r);
  }
  return "";
}

/// A name for an HDF5 file that lives in memory: one that no file on disk can have (HDF5 checks).
std::string memory_name() {
  static std::atomic<uint64_t> n{0};
  return "/dev/null/qkv-memory-file-" + std::to_string(n++);
}

/// File-access properties of a file held in memory (HDF5's core driver, nothing written to disk).
Handle memory_access_plist() {
  Handle fapl = plist_handle(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  H5Pset_fapl_core(fapl.get(), size_t{1} << 20, /*backing_store=*/0);
  return fapl;
}

ProbeLimits& limits() {
  static ProbeLimits l;
  return l;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

/// This process's address space in bytes (the first field of /proc/self/statm, in pages).
uint64_t address_space() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long long pages = 0;
  if (f) {
    if (std::fscanf(f, "%llu", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  return pages * static_cast<uint64_t>(::sysconf(_SC_PAGE_SIZE));
}

}  // namespace

void set_probe_limits(const ProbeLimits& l) {
  limits() = l;
}
ProbeLimits probe_limits() {
  return limits();
}

/// Reads every object of a file the way qkv's loaders do: each group's members and attributes,
/// each attribute's and each dataset's type, shape and values (those of the types qkv reads).
/// Throws qkv::Error when HDF5 reports a failure.
void Group::read_everything(std::set<uint64_t>& seen, uint64_t max_bytes) const {
  const Impl& im = impl();
  H5O_info_t oi;
  if (H5Oget_info2(im.id, &oi, H5O_INFO_BASIC) < 0)
    fail("{}: cannot read the header of {} ({})", *im.file, im.path, hdf5_detail());
  if (!seen.insert(static_cast<uint64_t>(oi.addr)).second) return;  // a group linked twice
  for (const std::string& a : attr_names()) {
    Info info = attr_info(a);
    if (info.dtype == DType::kString && info.numel() == 1) {
      string_attr(a);
    } else if (info.is_integer() || info.dtype == DType::kBool) {
      if (info.rank() <= 1) ints_attr(a);
    } else if (info.is_float() && info.rank() <= 1) {
      floats_attr(a);
    }
  }
  for (const std::string& m : members()) {
    switch (kind(m)) {
      case Kind::kGroup:
        group(m).read_everything(seen, max_bytes);
        break;
      case Kind::kDataset: {
        Info info = this->info(m);
        // What qkv's own size check surely refuses unread (more elements than bytes of memory)
        // is not read here either; everything else is, under this process's memory limit.
        if (info.rank() > kMaxDims || static_cast<uint64_t>(info.numel()) > max_bytes) break;
        if (info.dtype == DType::kFloat32) {
          read<float>(m);
        } else if (info.is_float()) {
          read<double>(m, /*allow_cast=*/true);
        } else if (info.dtype == DType::kString && info.rank() <= 1) {
          read_strings(m);
        } else if (info.dtype == DType::kBool) {
          read_bool(m);
        } else if (info.is_integer()) {
          try {
            read_u64(m);  // the raw values; read_index and read_bool read the same bytes
          } catch (const Error& e) {
            if (std::string(e.what()).find("expected unsigned") == std::string::npos) throw;
          }
        }
        break;
      }
      default:
        break;
    }
  }
}

namespace {

/// Opens and reads all of an unchecked file in a child process with a time and memory limit:
/// HDF5 1.10 can crash or loop on a damaged file, and then it is the child that does. Throws
/// one qkv::Error naming the file when the child crashed, ran out of time or memory, or found
/// the file unreadable.
void probe(const std::string& path, uint64_t file_size, const std::function<File()>& open) {
  const ProbeLimits l = limits();
  if (!l.enabled) return;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail("{}: cannot check the file ({})", path, errno_text(errno));
  std::fflush(nullptr);
  const uint64_t budget = l.memory_bytes + 4 * file_size;
  const uint64_t parent_limit = memory_limit();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    fail("{}: cannot check the file ({})", path, errno_text(err));
  }
  if (pid == 0) {  // the child: read everything, report, and leave without running any cleanup
    ::close(fds[0]);
    int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) {
      ::dup2(null, 1);
      ::dup2(null, 2);
    }
    if (!kAddressSanitizer) {  // ASan reserves terabytes of address space up front
      pool::trim();  // the parent's cached and freed memory is not this process's to reuse
      ::malloc_trim(0);
      const uint64_t space = address_space();
      rlimit r{space + budget, space + budget};
      ::setrlimit(RLIMIT_AS, &r);
    }
    ::alarm(static_cast<unsigned>(std::ceil(l.seconds)) + 1);  // in case the parent is gone
    std::string message;
    try {
      File f = open();
      std::set<uint64_t> seen;
      f.read_everything(seen, parent_limit);
      f.close();
    } catch (const std::bad_alloc&) {
      message = fmt::format(
          "{}: the file is damaged: reading it needs more than the {} MB of memory the check "
          "allows",
          path, budget >> 20);
    } catch (const std::exception& e) {
      message = e.what();
      if (message.rfind(path + ": ", 0) != 0) message = path + ": the file is damaged: " + message;
    } catch (...) {
      message = path + ": the file is damaged (reading it failed)";
    }
    if (!message.empty() && ::write(fds[1], message.data(), message.size()) < 0) ::_exit(4);
    ::_exit(message.empty() ? 0 : 3);
  }
  ::close(fds[1]);
  std::string message;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(l.seconds);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child closed the pipe: it has finished
    if (message.size() < 65536) message.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    fail("{}: the file is damaged: reading it took more than {:g} s (HDF5 did not finish)", path,
         l.seconds);
  if (WIFSIGNALED(status))
    fail("{}: the file is damaged: reading it crashed the HDF5 library ({})", path,
         strsignal(WTERMSIG(status)));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3 && !message.empty()) throw Error(message);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("{}: the file is damaged: reading it failed (the checking process exited with status {})",
         path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

}  // namespace

// ---- File ---------------------------------------------------------------------------------------

File::File(const std::string& path, int64_t fid, int fd, uint64_t file_size)
    : path_(path), fid_(fid), fd_(fd), unwinding_(std::uncaught_exceptions()) {
  auto root = std::make_shared<Impl>();
  root->file = std::make_shared<const std::string>(path);
  root->path = "/";
  root->writable = fd >= 0;
  root->file_size = file_size;
  root->id = H5Gopen2(fid, "/", H5P_DEFAULT);
  if (root->id < 0) {
    std::string why = hdf5_detail();
    H5Fclose(fid);
    fid_ = -1;
    if (fd >= 0) {
      ::close(fd);
      ::unlink(path.c_str());
    }
    fd_ = -1;
    fail("{}: cannot open the root group ({})", path, why);
  }
  impl_ = std::move(root);
}

namespace {

/// File-access properties: closing the file closes every object opened in it, and file locking
/// is skipped (not failed) on file systems that do not support it.
Handle file_access_plist() {
  Handle fapl = plist_handle(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl.get(), true, true);
#endif
  return fapl;
}

std::string parent_folder(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

File File::create(const std::string& path) {
  silence_hdf5();
  std::string folder = parent_folder(path);
  struct stat st;
  if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    fail("{}: cannot create: folder {} does not exist", path, folder);
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    fail("{}: cannot create: it is a folder", path);
  // The file is built in memory and written by close() in one go: HDF5 never writes to the disk
  // itself, so a full disk is one failed write() and leaves no HDF5 file half-open.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail("{}: cannot create ({})", path, errno_text(errno));
  Handle fcpl = plist_handle(H5Pcreate(H5P_FILE_CREATE));
  track_creation_order(fcpl.get());
  H5Pset_userblock(fcpl.get(), kHeaderBytes);
  Handle fapl = memory_access_plist();
  hid_t fid = H5Fcreate(memory_name().c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  if (fid < 0) {
    std::string why = hdf5_detail();
    ::close(fd);
    ::unlink(path.c_str());
    fail("{}: cannot create ({})", path, why);
  }
  return File(path, fid, fd, 0);
}

File File::open(const std::string& path) {
  silence_hdf5();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) fail("{}: does not exist", path);
    fail("{}: cannot open ({})", path, errno_text(errno));
  }
  if (S_ISDIR(st.st_mode)) fail("{}: is a folder, not an HDF5 file", path);
  if (::access(path.c_str(), R_OK) != 0) fail("{}: cannot open ({})", path, errno_text(errno));
  const auto size = static_cast<uint64_t>(st.st_size);
  std::vector<unsigned char> bytes = read_bytes(path, size, kHeaderBytes);
  if (has_header(bytes)) {
    if (size > memory_limit())
      fail("{}: the file is {} GiB, more than this machine's memory", path, gib(size, 1));
    bytes = read_bytes(path, size, SIZE_MAX);
    if (!has_header(bytes)) fail("{}: the file changed while it was read", path);
    verify(path, bytes);
    hid_t fid;
    {
      Handle fapl = memory_access_plist();
      H5Pset_file_image(fapl.get(), bytes.data() + kHeaderBytes, bytes.size() - kHeaderBytes);
      fid = H5Fopen(memory_name().c_str(), H5F_ACC_RDONLY, fapl.get());
    }
    if (fid < 0) fail("{}: cannot open ({})", path, hdf5_detail());
    return File(path, fid, -1, size);
  }
  if (has_damaged_header(bytes))
    fail(
        "{}: the file is damaged (its checksum header is damaged; restore it from a copy or use "
        "another one)",
        path);
  // No qkv checksum (h5py's files, or older qkv's): the file is read in full by a child process
  // first, and opened here only when that went well.
  htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 <= 0) {
    H5Eclear2(H5E_DEFAULT);
    fail("{}: not an HDF5 file", path);
  }
  auto open_here = [&] {
    Handle fapl = file_access_plist();
    hid_t fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
    if (fid < 0)
      fail("{}: cannot open: the file is damaged or truncated ({})", path, hdf5_detail());
    return File(path, fid, -1, size);
  };
  probe(path, size, open_here);
  return open_here();
}

File::File(File&& other) noexcept
    : Group(std::move(other.impl_)),
      path_(std::move(other.path_)),
      fid_(std::exchange(other.fid_, -1)),
      fd_(std::exchange(other.fd_, -1)),
      unwinding_(other.unwinding_) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    close_quietly();
    impl_ = std::move(other.impl_);
    path_ = std::move(other.path_);
    fid_ = std::exchange(other.fid_, -1);
    fd_ = std::exchange(other.fd_, -1);
    unwinding_ = other.unwinding_;
  }
  return *this;
}

File::~File() {
  close_quietly();
}

void File::flush() {
  if (fid_ < 0) fail("{}: cannot flush: the file is closed", path_);
  if (H5Fflush(fid_, H5F_SCOPE_GLOBAL) < 0) fail("{}: cannot flush ({})", path_, hdf5_detail());
}

void File::close() {
  if (fid_ < 0) return;
  impl_.reset();  // closes the root group (other copies are closed by H5F_CLOSE_STRONG)
  const hid_t fid = std::exchange(fid_, -1);
  if (fd_ < 0) {
    if (H5Fclose(fid) < 0) fail("{}: cannot close ({})", path_, hdf5_detail());
    return;
  }
  const int fd = std::exchange(fd_, -1);
  // The image of the HDF5 file after the header's room, then the header, then one write.
  std::string error;
  std::vector<unsigned char> bytes;
  ssize_t n = H5Fflush(fid, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(fid, nullptr, 0);
  if (n >= 0) {
    bytes.resize(kHeaderBytes + static_cast<size_t>(n));
    if (H5Fget_file_image(fid, bytes.data() + kHeaderBytes, static_cast<size_t>(n)) != n) n = -1;
  }
  if (n < 0) error = hdf5_detail();
  if (H5Fclose(fid) < 0 && error.empty()) error = hdf5_detail();
  H5Eclear2(H5E_DEFAULT);
  if (error.empty()) {
    seal(bytes);
    error = write_bytes(fd, bytes);
  }
  if (::close(fd) != 0 && error.empty()) error = errno_text(errno);
  if (!error.empty()) {
    ::unlink(path_.c_str());  // never leave half a file behind
    fail("{}: cannot write ({})", path_, error);
  }
}

void File::close_quietly() noexcept {
  if (fid_ >= 0 && fd_ >= 0 && std::uncaught_exceptions() <= unwinding_) {
    try {  // a file written without an explicit close(): written now, as close() would
      close();
    } catch (...) {
    }
    return;
  }
  impl_.reset();
  if (fid_ >= 0) {
    H5Fclose(std::exchange(fid_, -1));
    H5Eclear2(H5E_DEFAULT);
  }
  if (fd_ >= 0) {  // abandoned while an exception was thrown: no half-written file is left
    ::close(std::exchange(fd_, -1));
    ::unlink(path_.c_str());
  }
}

}  // namespace qkv::h5
