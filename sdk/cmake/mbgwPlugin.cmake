# mbgw_add_plugin(NAME source...)
#
# Builds an mbgw plugin: a shared module NAME.so with hidden visibility
# (only the entry symbol, marked MBGW_EXPORT, is exported), linked with
# -z defs so that it can never depend on a symbol of the daemon: everything
# it needs from mbgw comes through the host table. Link the plugin's own
# libraries with target_link_libraries(NAME PRIVATE ...).
#
# Used both by the plugins shipped with mbgw and, through the installed
# CMake package (find_package(mbgw)), by third-party plugins.
function(mbgw_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE mbgw::plugin)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  target_link_options(${name} PRIVATE "LINKER:-z,defs")
endfunction()
