/* restart: SHUTDOWN with SHUTDOWN_RESTART, which the Launcher reports as
 * exit status 3. */
#include "guest.h"

void main(void)
{
	lguest_init();
	print("restarting\n");
	restart("restart requested by the guest");
}
