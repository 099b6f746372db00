/* The signature database: name, byte pattern, length. */
#include "scanner.h"

static const unsigned char eicar[] =
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

static const unsigned char mz_dropper[] = {0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00, 0x00, 0x00,
                                           0x04, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00,
                                           0xde, 0xad, 0xbe, 0xef};

static const unsigned char shell_stager[] = "powershell -nop -w hidden -enc ";

const struct signature SIGNATURES[] = {
    {"EICAR-Test-File", eicar, sizeof eicar - 1},
    {"Demo.Dropper.MZ", mz_dropper, sizeof mz_dropper},
    {"Demo.Stager.PowerShell", shell_stager, sizeof shell_stager - 1},
};

const size_t SIGNATURE_COUNT = sizeof SIGNATURES / sizeof SIGNATURES[0];
