# Generates a C++ file holding every sql/NNN_*.sql migration, so the binary migrates without
# needing the source tree (a systemd deployment has only the binary and its config).
file(GLOB files "${SQL_DIR}/[0-9][0-9][0-9]_*.sql")
list(SORT files)
set(out "// Generated from sql/ by cmake_embed_sql.cmake; do not edit.\n#include \"outboxd/db/migrations.hpp\"\nnamespace outboxd::db {\nconst std::vector<Migration>& embedded_migrations() {\n  static const std::vector<Migration> m = {\n")
foreach(f ${files})
  get_filename_component(name ${f} NAME_WE)
  file(READ ${f} body)
  string(APPEND out "    {\"${name}\", R\"outboxdsql(${body})outboxdsql\"},\n")
endforeach()
string(APPEND out "  };\n  return m;\n}\n}  // namespace outboxd::db\n")
file(WRITE "${OUT}.tmp" "${out}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
