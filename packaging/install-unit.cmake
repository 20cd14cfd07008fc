# Run by `cmake --install` (see install.cmake): writes mbgw.service with the
# directories of this install. Paths that are relative are relative to the
# prefix given at install time (CMAKE_INSTALL_PREFIX, possibly --prefix);
# DESTDIR is where the file goes, never part of what it says.
foreach(v MBGW_UNIT_DIR MBGW_UNIT_SBINDIR MBGW_UNIT_CONFDIR)
  if(IS_ABSOLUTE "${${v}}")
    set(${v}_FULL "${${v}}")
  else()
    set(${v}_FULL "${CMAKE_INSTALL_PREFIX}/${${v}}")
  endif()
endforeach()
file(READ "${MBGW_UNIT_SOURCE}" unit)
string(REPLACE "/usr/sbin/mbgw" "${MBGW_UNIT_SBINDIR_FULL}/mbgw" unit "${unit}")
string(REPLACE "/etc/mbgw/conf.d" "${MBGW_UNIT_CONFDIR_FULL}" unit "${unit}")
set(dest "$ENV{DESTDIR}${MBGW_UNIT_DIR_FULL}")
message(STATUS "Installing: ${dest}/mbgw.service")
file(MAKE_DIRECTORY "${dest}")
file(WRITE "${dest}/mbgw.service" "${unit}")
