#include "core/tensor.h"

namespace qkv {

template class Tensor<float>;
template class Tensor<double>;

}  // namespace qkv
