#pragma once

#include <syncwarden/kernel/plan.hpp>

#include <string>

namespace syncwarden::kernel {

// One line for people: "update students/s-1: first_name 'Ann' -> 'Anne'".
// Control characters in values are escaped, so it is safe on a terminal.
std::string change_line(const entity_plan& ep, const planned_change& c);

}  // namespace syncwarden::kernel
