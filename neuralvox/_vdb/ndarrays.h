// The numpy array types the compiled kernels take and return (one-dimensional, C-contiguous, on the CPU).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

template <typename T>
using In = nanobind::ndarray<const T, nanobind::ndim<1>, nanobind::c_contig, nanobind::device::cpu>;
template <typename T>
using Out = nanobind::ndarray<nanobind::numpy, T>;
