// outboxctl: status, dead letters and pauses for ops and DBAs (command table in main()).
#include <iostream>

int main() {
    std::cerr << "outboxctl: not built yet\n";
    return 1;
}
