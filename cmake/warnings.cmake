# openstation_warnings: an interface target every project target links, carrying the warning set,
# -Werror in CI and the sanitizer flags when OPENSTATION_SANITIZE is on.
add_library(openstation_warnings INTERFACE)
target_compile_options(openstation_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
  -Wimplicit-fallthrough)
if(OPENSTATION_WERROR)
  target_compile_options(openstation_warnings INTERFACE -Werror)
endif()
if(OPENSTATION_SANITIZE)
  target_compile_options(openstation_warnings INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer)
  target_link_options(openstation_warnings INTERFACE -fsanitize=address,undefined)
endif()
