# uartproxy firmware entry point: MicroPython runs main.py after boot.py.
# Everything lives in the uproxy package; see README.md.
import uproxy.app

uproxy.app.main()
