#include "core/h5.h"

#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>

#include "core/error.h"

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

}  // namespace

// ---- Info -------------------------------------------------------------------------------------

int64_t Info::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
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

  Info dataset_info(const Handle& d) const {
    Handle t = type_handle(H5Dget_type(d.get()));
    Handle s = space_handle(H5Dget_space(d.get()));
    return describe(t.get(), s.get());
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
    std::vector<int64_t> out(static_cast<size_t>(info.numel()));
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
    Info info = dataset_info(d);
    if (info.dtype != native && info.dtype != DType::kBool && !info.is_integer())
      fail("{}: dataset {} has dtype {}; expected {}", file, where(name), info.dtype_name, want);
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
  Info attr_info(const Handle& a) const {
    Handle t = type_handle(H5Aget_type(a.get()));
    Handle s = space_handle(H5Aget_space(a.get()));
    return describe(t.get(), s.get());
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

#define QKV_LOC()                         \
  const Impl& im = impl();                \
  const Loc loc {                         \
    *im.file, im.path, im.id, im.writable \
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
  return loc.dataset_info(d);
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
  Info info = loc.dataset_info(d);
  if (info.dtype != want && !(allow_cast && info.is_float()))
    fail("{}: dataset {} has dtype {}; expected {}", loc.file, loc.where(name), info.dtype_name,
         want_name);
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
  Info info = loc.dataset_info(d);
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
  Info info = describe(type.get(), space.get());
  if (info.dtype != DType::kString || info.rank() > 1)
    fail("{}: dataset {} is {} {}; expected a 1-D array of strings", loc.file, loc.where(name),
         info.dtype_name, dims_str(info.dims));
  size_t n = static_cast<size_t>(info.numel());
  std::vector<std::string> out;
  out.reserve(n);
  if (n == 0) return out;
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem = vlen_string_type(H5Tget_cset(type.get()));
    std::vector<char*> ptrs(n, nullptr);
    loc.read_raw(d, mem.get(), ptrs.data(), name);
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
  } else {
    size_t width = H5Tget_size(type.get());
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
  Info info = loc.dataset_info(d);
  Shape s = loc.shape_of(info, name);
  if (shape) *shape = s;
  std::vector<uint64_t> out(static_cast<size_t>(info.numel()));
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
  return loc.attr_info(a);
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
  Info info = describe(type.get(), space.get());
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
  Info info = loc.attr_info(a);
  if ((info.dtype != DType::kBool && !info.is_integer()) || info.numel() != 1)
    loc.fail_attr_type(name, info, "a bool");
  return int_attr(name) != 0;
}

std::vector<int64_t> Group::ints_attr(const std::string& name) const {
  QKV_LOC();
  Handle a = loc.open_attr(name);
  Info info = loc.attr_info(a);
  if ((info.dtype != DType::kBool && !info.is_integer()) || info.rank() > 1)
    loc.fail_attr_type(name, info, "integers");
  std::vector<int64_t> out(static_cast<size_t>(info.numel()));
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
  Info info = loc.attr_info(a);
  if ((!info.is_float() && !info.is_integer()) || info.rank() > 1)
    loc.fail_attr_type(name, info, "numbers");
  std::vector<double> out(static_cast<size_t>(info.numel()));
  if (!out.empty()) loc.read_attr(a, H5T_NATIVE_DOUBLE, out.data(), name);
  return out;
}

#undef QKV_LOC

// ---- File ---------------------------------------------------------------------------------------

File::File(const std::string& path, int64_t fid, bool writable) : path_(path), fid_(fid) {
  auto root = std::make_shared<Impl>();
  root->file = std::make_shared<const std::string>(path);
  root->path = "/";
  root->writable = writable;
  root->id = H5Gopen2(fid, "/", H5P_DEFAULT);
  if (root->id < 0) {
    std::string why = hdf5_detail();
    H5Fclose(fid);
    fid_ = -1;
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
  Handle fcpl = plist_handle(H5Pcreate(H5P_FILE_CREATE));
  track_creation_order(fcpl.get());
  Handle fapl = file_access_plist();
  errno = 0;
  hid_t fid = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  int err = errno;
  if (fid < 0) {
    std::string why = hdf5_detail();
    fail("{}: cannot create ({})", path, err ? errno_text(err) : why);
  }
  return File(path, fid, true);
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
  htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 <= 0) {
    H5Eclear2(H5E_DEFAULT);
    fail("{}: not an HDF5 file", path);
  }
  Handle fapl = file_access_plist();
  hid_t fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (fid < 0) fail("{}: cannot open: the file is damaged or truncated ({})", path, hdf5_detail());
  return File(path, fid, false);
}

File::File(File&& other) noexcept
    : Group(std::move(other.impl_)),
      path_(std::move(other.path_)),
      fid_(std::exchange(other.fid_, -1)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    close_quietly();
    impl_ = std::move(other.impl_);
    path_ = std::move(other.path_);
    fid_ = std::exchange(other.fid_, -1);
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
  herr_t r = H5Fclose(std::exchange(fid_, -1));
  if (r < 0) fail("{}: cannot close ({})", path_, hdf5_detail());
}

void File::close_quietly() noexcept {
  impl_.reset();
  if (fid_ >= 0) {
    H5Fclose(std::exchange(fid_, -1));
    H5Eclear2(H5E_DEFAULT);
  }
}

}  // namespace qkv::h5
