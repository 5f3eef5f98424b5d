# cmake --install: the qkv program, the libraries, the headers under include/qkv/ (so
# <qkv/core/tensor.h> and, inside the headers, "core/tensor.h" both resolve), and the CMake
# package: find_package(qkv) gives qkv::qkv and one target per layer (qkv::core, qkv::nn, …).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(QKV_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/qkv)

install(TARGETS ${QKV_LAYER_TARGETS} qkv_all EXPORT qkvTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(layer IN LISTS QKV_LAYERS)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${layer}/ DESTINATION include/qkv/${layer}
          FILES_MATCHING PATTERN "*.h")
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/generated/core/version.h DESTINATION include/qkv/core)
install(FILES ${PROJECT_SOURCE_DIR}/include/qkv/qkv.h DESTINATION include/qkv)
if(TARGET qkv)
  install(TARGETS qkv RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

install(EXPORT qkvTargets NAMESPACE qkv:: DESTINATION ${QKV_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/qkvConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/qkvConfig.cmake
                              INSTALL_DESTINATION ${QKV_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/qkvConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/qkvConfig.cmake ${PROJECT_BINARY_DIR}/qkvConfigVersion.cmake
        DESTINATION ${QKV_CMAKE_DIR})
