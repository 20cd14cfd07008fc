# Install rules for the server side of mbgw (the SDK installs itself in
# sdk/CMakeLists.txt, shipped plugins in plugins/*/CMakeLists.txt).
# Included once from the top-level CMakeLists.txt, after core/ and plugins/.
#
# Layout (GNUInstallDirs), for prefix /usr as the Debian package uses it:
#   /usr/sbin/mbgw                       the daemon (sbin: an administrator's
#                                        service, like nginx, haproxy,
#                                        mosquitto; its man page is in section 8)
#   /usr/lib/<multiarch>/mbgw/plugins/   shipped plugins (MBGW_INSTALL_PLUGINDIR)
#   /etc/mbgw/conf.d/                    default configuration
#   /usr/share/man/man{5,7,8}/           mbgw.conf(5), mbgw-plugin(7), mbgw(8)
#   /usr/share/doc/mbgw/                 docs/*.md
#   /lib/systemd/system/mbgw.service     (Debian passes MBGW_SYSTEMD_UNITDIR)
# For other prefixes the configuration goes to <sysconfdir>/mbgw/conf.d, i.e.
# <prefix>/etc/mbgw/conf.d (GNUInstallDirs puts /opt/X's in /etc/opt/X).
include(GNUInstallDirs)

set(MBGW_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
  "Where the systemd unit is installed (relative: below the prefix)")
option(MBGW_INSTALL_SYSTEMD_UNIT "Install packaging/mbgw.service" ON)

# A destination below the prefix stays relative, so that
# `cmake --install BUILD --prefix DIR` (tests, staging) keeps everything in
# DIR; only a location outside the prefix (/etc for prefix /usr) is absolute.
function(mbgw_install_dest out full)
  file(RELATIVE_PATH rel "${CMAKE_INSTALL_PREFIX}" "${full}")
  if(rel MATCHES "^\\.\\./" OR IS_ABSOLUTE "${rel}")
    set(${out} "${full}" PARENT_SCOPE)
  else()
    set(${out} "${rel}" PARENT_SCOPE)
  endif()
endfunction()

set(MBGW_INSTALL_FULL_CONFDIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/mbgw/conf.d")
if(IS_ABSOLUTE "${MBGW_INSTALL_PLUGINDIR}")
  set(MBGW_INSTALL_FULL_PLUGINDIR "${MBGW_INSTALL_PLUGINDIR}")
else()
  set(MBGW_INSTALL_FULL_PLUGINDIR "${CMAKE_INSTALL_PREFIX}/${MBGW_INSTALL_PLUGINDIR}")
endif()
mbgw_install_dest(MBGW_CONF_DEST "${MBGW_INSTALL_FULL_CONFDIR}")
if(IS_ABSOLUTE "${MBGW_SYSTEMD_UNITDIR}")
  set(MBGW_INSTALL_FULL_UNITDIR "${MBGW_SYSTEMD_UNITDIR}")
else()
  set(MBGW_INSTALL_FULL_UNITDIR "${CMAKE_INSTALL_PREFIX}/${MBGW_SYSTEMD_UNITDIR}")
endif()

# The installed binary: the same main.c and core as build/mbgw, with the
# install prefix's default directories. build/mbgw (tests, `make run`) keeps
# finding build/lib/mbgw/plugins; this one lands in build/install-bin/ and is
# what `cmake --install` copies. Besides the absolute directories it gets
# them relative to its own folder, resolved at run time (see core/main.c), so
# a DESTDIR staging tree or an unpacked .deb uses its own files.
file(RELATIVE_PATH MBGW_EXE_CONF_DIR "${CMAKE_INSTALL_FULL_SBINDIR}" "${MBGW_INSTALL_FULL_CONFDIR}")
file(RELATIVE_PATH MBGW_EXE_PLUGIN_DIR "${CMAKE_INSTALL_FULL_SBINDIR}" "${MBGW_INSTALL_FULL_PLUGINDIR}")
add_executable(mbgw_installed ${PROJECT_SOURCE_DIR}/core/main.c)
target_link_libraries(mbgw_installed PRIVATE mbgwcore)
target_compile_definitions(mbgw_installed PRIVATE
  MBGW_DEFAULT_CONF_DIR="${MBGW_INSTALL_FULL_CONFDIR}"
  MBGW_DEFAULT_PLUGIN_DIR="${MBGW_INSTALL_FULL_PLUGINDIR}"
  MBGW_EXE_CONF_DIR="${MBGW_EXE_CONF_DIR}"
  MBGW_EXE_PLUGIN_DIR="${MBGW_EXE_PLUGIN_DIR}")
set_target_properties(mbgw_installed PROPERTIES
  OUTPUT_NAME mbgw
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/install-bin)
install(TARGETS mbgw_installed RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})

# Default configuration. Debian marks every file below /etc a conffile, so an
# upgrade never overwrites an operator's edits (dpkg asks instead).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/conf.d/ DESTINATION ${MBGW_CONF_DEST}
  FILES_MATCHING PATTERN "*.conf")

# Man pages (troff, written by hand in docs/man; tests/packaging checks that
# mbgw.conf.5 names every configuration key of core/conf/conf.c).
install(FILES ${PROJECT_SOURCE_DIR}/docs/man/mbgw.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${PROJECT_SOURCE_DIR}/docs/man/mbgw.conf.5 DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
install(FILES ${PROJECT_SOURCE_DIR}/docs/man/mbgw-plugin.7 DESTINATION ${CMAKE_INSTALL_MANDIR}/man7)

# Operator and plugin-author documentation.
file(GLOB MBGW_DOCS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${MBGW_DOCS} ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# systemd unit, with the paths of this install. packaging/mbgw.service is
# written for /usr/sbin and /etc/mbgw (the Debian package installs it as
# is); packaging/install-unit.cmake rewrites them at install time, so that
# `cmake --install --prefix DIR` gets a unit that runs DIR/sbin/mbgw.
if(MBGW_INSTALL_SYSTEMD_UNIT)
  install(CODE "
    set(MBGW_UNIT_SOURCE \"${PROJECT_SOURCE_DIR}/packaging/mbgw.service\")
    set(MBGW_UNIT_DIR \"${MBGW_SYSTEMD_UNITDIR}\")
    set(MBGW_UNIT_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")
    set(MBGW_UNIT_CONFDIR \"${MBGW_CONF_DEST}\")
    include(\"${PROJECT_SOURCE_DIR}/packaging/install-unit.cmake\")")
endif()
