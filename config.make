# nginx addon make fragment (auto/make sources it after writing the
# Makefile's rules): the dashboard page, kept as ngx_module/dashboard.html,
# becomes a C header in the build folder that the module's object depends
# on (ngx_module_deps in config), so editing the page rebuilds the module.

cat << END >> $NGX_MAKEFILE

$NGX_OBJS/ngx_http_offload_dashboard_page.h: \\
	$ngx_addon_dir/ngx_module/dashboard.html \\
	$ngx_addon_dir/ngx_module/embed_file.sh
	sh $ngx_addon_dir/ngx_module/embed_file.sh ngx_http_offload_page \\
		$ngx_addon_dir/ngx_module/dashboard.html > \$@.tmp
	mv \$@.tmp \$@

END
